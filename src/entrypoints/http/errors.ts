import { STATUS_CODES } from 'node:http'
import type { FastifySchemaValidationError } from 'fastify'
import {
  BatchConflict,
  HoldWithBackorder,
  InvalidSku,
  LineConflict,
  NotAllocated,
  UnknownBatch,
} from '../../domain/errors.ts'
import { ConcurrencyConflict, Unavailable } from '../../service-layer/ports.ts'
import { type ErrorBody, formatProblem } from './schemas.ts'

/** A GET of an order without allocations (or without lines); not a domain failure, so it lives here. */
export class UnknownOrder extends Error {
  override readonly name = 'UnknownOrder'
  constructor(orderid: string, what: 'allocations' | 'lines' = 'allocations') {
    super(`Order ${orderid} has no ${what}`)
  }
}

export class UnknownProduct extends Error {
  override readonly name = 'UnknownProduct'
  constructor(sku: string) {
    super(`There is no product with sku ${sku}`)
  }
}

/** A read of events after an id older than those the outbox still keeps: some in between are gone. */
export class EventsPruned extends Error {
  override readonly name = 'EventsPruned'
  constructor(after: number, prunedThrough: number, instead: string) {
    super(
      `Events up to id ${prunedThrough} have been removed for their age, so reading after id ${after} would miss ` +
        `some of them; ${instead}`,
    )
  }
}

/** The resource API reports out of stock as a conflict; the book's `/allocate` answers 202 instead. */
export class LineOutOfStock extends Error {
  override readonly name = 'LineOutOfStock'
  constructor(orderid: string, sku: string, qty: number) {
    super(`Out of stock: no batch of ${sku} can take ${qty} for order ${orderid}`)
  }
}

/** `retryAfter`: seconds, for the `Retry-After` header of a passing failure. */
export type ErrorAnswer = Readonly<{ status: number; body: ErrorBody; retryAfter?: number }>

type ErrorClass = abstract new (...args: never[]) => Error
type Detail = NonNullable<ErrorBody['details']>[number]
type Rule = Readonly<{ status: number; code: string; message?: string; retryAfter?: number; detail?: Detail }>

const UNAVAILABLE_MESSAGE = 'The database is not answering; nothing was changed, please try again shortly'

/** What a request that arrives while the service shuts down is answered (nothing was done). */
export const shuttingDownAnswer: ErrorAnswer = {
  status: 503,
  body: { message: 'The service is shutting down; please send the request again', code: 'unavailable' },
  retryAfter: 1,
}

/**
 * The one table from failures to answers: error classes keep their own message (it names the ids);
 * Fastify's errors, matched by code, get a sentence of ours.
 */
const rules: ReadonlyArray<readonly [ErrorClass | string, Rule]> = [
  [InvalidSku, { status: 400, code: 'invalid_sku' }],
  [
    HoldWithBackorder,
    {
      status: 400,
      code: 'validation_failed',
      detail: { location: 'body', field: 'holdSeconds', rule: 'not', message: 'must not come with "backorder": true' },
    },
  ],
  [UnknownBatch, { status: 404, code: 'unknown_batch' }],
  [NotAllocated, { status: 404, code: 'not_allocated' }],
  [UnknownOrder, { status: 404, code: 'unknown_order' }],
  [UnknownProduct, { status: 404, code: 'unknown_product' }],
  [BatchConflict, { status: 409, code: 'batch_conflict' }],
  [LineConflict, { status: 409, code: 'line_conflict' }],
  [LineOutOfStock, { status: 409, code: 'out_of_stock' }],
  [EventsPruned, { status: 410, code: 'events_pruned' }],
  [ConcurrencyConflict, { status: 503, code: 'busy', message: 'The service is busy; please try again', retryAfter: 1 }],
  [Unavailable, { status: 503, code: 'unavailable', message: UNAVAILABLE_MESSAGE, retryAfter: 2 }],
  ['FST_ERR_VALIDATION', { status: 400, code: 'validation_failed' }],
  [
    'FST_ERR_CTP_INVALID_JSON_BODY',
    { status: 400, code: 'invalid_json', message: 'The request body is not valid JSON' },
  ],
  [
    'FST_ERR_CTP_EMPTY_JSON_BODY',
    { status: 400, code: 'invalid_json', message: 'The request body is empty; send a JSON object' },
  ],
  [
    'FST_ERR_CTP_BODY_TOO_LARGE',
    { status: 413, code: 'body_too_large', message: 'The request body is larger than the limit of 1 MiB' },
  ],
  [
    'FST_ERR_CTP_INVALID_MEDIA_TYPE',
    { status: 415, code: 'unsupported_media_type', message: 'Send the request body as application/json' },
  ],
]

/** What to answer for `error`; anything unexpected is a 500 that says nothing about the internals. */
export function answerFor(error: unknown): ErrorAnswer {
  const rule = rules.find(([match]) =>
    typeof match === 'string' ? codeOf(error) === match : error instanceof match,
  )?.[1]
  if (rule) {
    const validation = validationOf(error)
    if (validation) return { status: rule.status, body: validationBody(validation.context, validation.errors) }
    const message = rule.message ?? (error as Error).message
    const body = { message, code: rule.code, ...(rule.detail && { details: [rule.detail] }) }
    const answer = { status: rule.status, body }
    return rule.retryAfter === undefined ? answer : { ...answer, retryAfter: rule.retryAfter }
  }
  // Fastify's other client errors (a malformed URL, a poisoned prototype, a bad content-length) carry
  // their status and a readable message.
  const status = statusOf(error)
  if (status !== undefined && status >= 400 && status < 500) {
    return { status, body: { message: (error as Error).message, code: codeName(status) } }
  }
  return { status: 500, body: { message: 'Something went wrong on our side; it has been logged', code: 'internal' } }
}

export function notFoundAnswer(method: string, url: string): ErrorAnswer {
  return { status: 404, body: { message: `There is no route ${method} ${url}`, code: 'not_found' } }
}

function validationBody(location: string, errors: FastifySchemaValidationError[]): ErrorBody {
  const details = errors.map((error) => ({
    location,
    field: fieldOf(error),
    rule: error.keyword,
    message: problemOf(error),
  }))
  const first = details[0]
  const message = first ? `${subjectOf(location, first.field)} ${first.message}` : `The ${location} is invalid`
  return { message, code: 'validation_failed', details }
}

function fieldOf({ instancePath, keyword, params }: FastifySchemaValidationError): string | null {
  if (keyword === 'required') return String(params.missingProperty)
  if (keyword === 'additionalProperties') return String(params.additionalProperty)
  return instancePath === '' ? null : instancePath.slice(1).replaceAll('/', '.')
}

function subjectOf(location: string, field: string | null): string {
  const places: Record<string, [whole: string, part: string]> = {
    body: ['The request body', 'The field'],
    params: ['The path', 'The path parameter'],
    querystring: ['The query string', 'The query parameter'],
  }
  const [whole, part] = places[location] ?? [`The ${location}`, `The ${location} field`]
  return field === null ? whole : `${part} "${field}"`
}

/** The predicate of the sentence, in words a client developer would use. */
export function problemOf({
  keyword,
  params,
  message,
}: Pick<FastifySchemaValidationError, 'keyword' | 'params' | 'message'>): string {
  switch (keyword) {
    case 'required':
      return 'is required'
    case 'additionalProperties':
      return 'is not allowed'
    case 'type':
      return `must be ${typeNames(params.type)}`
    case 'minimum':
      return `must be at least ${params.limit}`
    case 'maximum':
      return `must be at most ${params.limit}`
    case 'minLength':
      return params.limit === 1 ? 'must not be empty' : `must be at least ${params.limit} characters long`
    case 'maxLength':
      return `must be at most ${params.limit} characters long`
    case 'minProperties':
      return params.limit === 1 ? 'must have at least one field' : `must have at least ${params.limit} fields`
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
    case 'pattern':
      return formatProblem(keyword, params) ?? `must match the pattern ${params.pattern}`
    case 'minItems':
      return `must have at least ${params.limit} item${params.limit === 1 ? '' : 's'}`
    case 'maxItems':
      return `must have at most ${params.limit} items`
    case 'format':
      return formatProblem(keyword, params) ?? `must be a valid ${params.format}`
    default:
      return message ?? 'is invalid'
  }
}

function typeNames(type: unknown): string {
  const names: Record<string, string> = {
    object: 'a JSON object',
    array: 'an array',
    string: 'a string',
    integer: 'an integer',
    number: 'a number',
    boolean: 'true or false',
    null: 'null',
  }
  const types = (Array.isArray(type) ? type : String(type).split(',')).map(String)
  return types.map((t) => names[t] ?? t).join(' or ')
}

function validationOf(error: unknown): { context: string; errors: FastifySchemaValidationError[] } | undefined {
  const { validation, validationContext } = error as { validation?: unknown; validationContext?: unknown }
  if (!Array.isArray(validation)) return undefined
  return { context: String(validationContext ?? 'request'), errors: validation }
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' ? status : undefined
}

function codeName(status: number): string {
  return (STATUS_CODES[status] ?? 'client error').toLowerCase().replaceAll(/[^a-z]+/g, '_')
}
