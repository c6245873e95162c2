import type { TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { formatProblem } from './http/schemas.ts'

export class InvalidInput extends Error {
  override readonly name = 'InvalidInput'
}

/** Checks untrusted input against the schema the HTTP API documents, with a sentence per problem. */
export function parseInput<T>(schema: TSchema, input: unknown, what: string): T {
  if (Value.Check(schema, input)) return input as T
  const problems = [...Value.Errors(schema, input)].map(
    (e) => `${e.instancePath || 'value'} ${formatProblem(e.keyword, e.params) ?? e.message}`,
  )
  throw new InvalidInput(`Invalid ${what}: ${problems.join('; ')}`)
}
