import type { TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { describesControlCharacters } from './command-schemas.ts'

export class InvalidInput extends Error {
  override readonly name = 'InvalidInput'
}

/** Checks untrusted input against the schema the HTTP API documents, with a sentence per problem. */
export function parseInput<T>(schema: TSchema, input: unknown, what: string): T {
  if (Value.Check(schema, input)) return input as T
  const problems = [...Value.Errors(schema, input)].map(
    (e) =>
      `${e.instancePath || 'value'} ${describesControlCharacters(e.keyword, e.params) ? 'must not contain control characters' : e.message}`,
  )
  throw new InvalidInput(`Invalid ${what}: ${problems.join('; ')}`)
}
