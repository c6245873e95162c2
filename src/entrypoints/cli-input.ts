import type { TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { problemOf } from './http/errors.ts'

/** The operator typed something the command cannot take: exit code 2. */
export class InvalidInput extends Error {
  override readonly name = 'InvalidInput'
}

/** The batch, order or sku the command names does not exist: exit code 4. */
export class NotFound extends Error {
  override readonly name = 'NotFound'
}

/**
 * Checks untrusted input against the schema the HTTP API documents, with a sentence per bad field that
 * names it as the operator typed it (`names`: `{ holdSeconds: '--hold' }`; by default the field's name).
 */
export function parseInput<T>(
  schema: TSchema,
  input: Record<string, unknown>,
  what: string,
  names: Readonly<Record<string, string>> = {},
): T {
  if (Value.Check(schema, input)) return input as T
  const seen = new Set<string>()
  const problems: string[] = []
  for (const error of Value.Errors(schema, input)) {
    const field = error.instancePath.slice(1)
    if (seen.has(field)) continue
    seen.add(field)
    const typed = field in input ? `, not ${JSON.stringify(String(input[field]))}` : ''
    problems.push(`${names[field] ?? (field || 'the value')} ${problemOf(error)}${typed}`)
  }
  throw new InvalidInput(`Invalid ${what}: ${problems.join('; ')}`)
}
