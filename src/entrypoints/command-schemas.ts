import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import type { ChangeBatchQuantity, Command } from '../domain/commands.ts'
import {
  BatchEta,
  BatchQuantity,
  formatProblem,
  LineParams,
  NewAllocation,
  NewBatch,
  RefParams,
} from './http/schemas.ts'

/** A message from outside that is not one of ours: wrong JSON, unknown type, a missing or invalid field. */
export class MalformedMessage extends Error {
  override readonly name = 'MalformedMessage'
}

// The payloads are the bodies the HTTP API accepts, so both doors let in exactly the same commands.
const payloads = {
  CreateBatch: Compile(NewBatch),
  Allocate: Compile(NewAllocation),
  Deallocate: Compile(LineParams),
  ChangeBatchQuantity: Compile(
    Type.Object({ ...RefParams.properties, ...BatchQuantity.properties }, { additionalProperties: false }),
  ),
  ChangeBatchEta: Compile(
    Type.Object({ ...RefParams.properties, ...BatchEta.properties }, { additionalProperties: false }),
  ),
} as const

/** The book's `change_batch_quantity` message names the batch `batchref`. */
const batchQuantityMessage = Compile(
  Type.Object(
    { batchref: RefParams.properties.ref, qty: BatchQuantity.properties.qty },
    { additionalProperties: false },
  ),
)

type Validator = Readonly<{ Check(value: unknown): boolean; Errors(value: unknown): Iterable<ValidationError> }>
type ValidationError = Readonly<{ keyword: string; instancePath: string; params: object; message: string }>

/** The command in a stream entry's `type` and `payload` (JSON of the command's fields). */
export function parseCommand(type: string | undefined, payload: string | undefined): Command {
  if (type === undefined) throw new MalformedMessage('The entry has no "type" field')
  if (!Object.hasOwn(payloads, type)) throw new MalformedMessage(`Unknown command type "${type}"`)
  if (payload === undefined) throw new MalformedMessage(`The ${type} entry has no "payload" field`)
  const fields = validated(payloads[type as keyof typeof payloads], parseJson(payload), `${type} payload`)
  return { ...(fields as object), type } as Command
}

/** The book's `{"batchref", "qty"}` as the command it asks for. */
export function parseBatchQuantityMessage(text: string): ChangeBatchQuantity {
  const { batchref, qty } = validated(batchQuantityMessage, parseJson(text), 'message') as {
    batchref: string
    qty: number
  }
  return { type: 'ChangeBatchQuantity', ref: batchref, qty }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new MalformedMessage(`Not valid JSON: ${(error as Error).message}`)
  }
}

function validated(validator: Validator, value: unknown, what: string): unknown {
  if (validator.Check(value)) return value
  throw new MalformedMessage(`Invalid ${what}: ${[...validator.Errors(value)].flatMap(describe).join('; ')}`)
}

function describe({ keyword, instancePath, params, message }: ValidationError): string[] {
  // TypeBox reports each extra field twice: once as a `false` schema, once in the object's error.
  if (keyword === 'boolean') return []
  if (keyword === 'additionalProperties') {
    const extra = (params as { additionalProperties?: string[] }).additionalProperties ?? []
    return [`fields not allowed: ${extra.map((field) => `"${field}"`).join(', ')}`]
  }
  const problem = formatProblem(keyword, params) ?? message
  return [instancePath === '' ? problem : `"${instancePath.slice(1)}" ${problem}`]
}
