import { type Static, Type } from 'typebox'

/*
 * The one description of the wire format: Fastify validates requests and serialises responses with these
 * schemas, and @fastify/swagger turns them into the OpenAPI document.
 *
 * Bodies are closed (`additionalProperties: false`, with Ajv's `removeAdditional` off): a misspelt or
 * unexpected field is a 400 naming it, rather than a value silently ignored.
 */

const MAX_QTY = 2_147_483_647

/**
 * Ids are plain text. No control characters (U+0000 to U+001F, U+007F): PostgreSQL refuses NUL, and logs
 * and terminals the rest. No unpaired surrogate (half of a UTF-16 pair, which JSON can escape as `\\ud800`):
 * it has no UTF-8 form, and PostgreSQL's JSON refuses it. Patterns are Unicode expressions, so a whole pair
 * (an emoji) is one character and passes.
 */
const ID_TEXT = '^[^\\u0000-\\u001F\\u007F\\uD800-\\uDFFF]*$'

/** ajv-formats' `date` takes the year 0000, which PostgreSQL's dates do not have (1 BC is its year 0001 BC). */
const NOT_YEAR_ZERO = '^(?!0000-)'

export const DATE_PROBLEM = 'must be a real calendar date written YYYY-MM-DD'

/** What a value that fails `format` or `pattern` is missing, in words; `undefined` for patterns not ours. */
export function formatProblem(keyword: string, params: object): string | undefined {
  const { pattern, format } = params as { pattern?: unknown; format?: unknown }
  if (keyword === 'pattern' && pattern === ID_TEXT) return 'must not contain control characters or unpaired surrogates'
  if ((keyword === 'pattern' && pattern === NOT_YEAR_ZERO) || (keyword === 'format' && format === 'date')) {
    return DATE_PROBLEM
  }
  return undefined
}

const id = (description: string) => Type.String({ minLength: 1, maxLength: 255, pattern: ID_TEXT, description })

const Ref = id('Batch reference')
const Sku = id('Stock-keeping unit')
const Orderid = id('Order id')
const Batchref = id('Reference of the batch serving the line')
const Qty = Type.Integer({ minimum: 1, maximum: MAX_QTY, description: 'A quantity, 1 to 2147483647' })
const Count = Type.Integer({ minimum: 0 })
// A type list rather than anyOf, so Ajv reports one precise error ("must match format date") instead of
// one per branch; the `date` format of ajv-formats checks the calendar (no 2026-02-30).
const Eta = Type.Unsafe<string | null>({
  type: ['string', 'null'],
  format: 'date',
  pattern: NOT_YEAR_ZERO,
  description: '`null` for warehouse stock, otherwise the arrival date as YYYY-MM-DD',
})
const NullableBatchref = Type.Unsafe<string | null>({
  type: ['string', 'null'],
  description: 'Reference of the batch serving the line; `null` when it is out of stock',
})

const closed = <T extends Parameters<typeof Type.Object>[0]>(properties: T) =>
  Type.Object(properties, { additionalProperties: false })

export const ErrorBody = Type.Object(
  {
    message: Type.String({ description: 'A sentence naming the ids involved' }),
    code: Type.String({ description: 'Machine-readable, e.g. invalid_sku, out_of_stock, validation_failed' }),
    details: Type.Optional(
      Type.Array(
        Type.Object({
          location: Type.String({ description: 'body, params or querystring' }),
          field: Type.Union([Type.String(), Type.Null()]),
          rule: Type.String({ description: 'The JSON Schema keyword that failed' }),
          message: Type.String(),
        }),
      ),
    ),
  },
  { description: 'Every error has this shape' },
)
export type ErrorBody = Static<typeof ErrorBody>

/** Response schemas for the given error statuses, for the OpenAPI document. */
export function errorResponses<const S extends number>(...statuses: S[]): Record<S, typeof ErrorBody> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorBody])) as Record<S, typeof ErrorBody>
}

export const NewBatch = closed({ ref: Ref, sku: Sku, qty: Qty, eta: Eta })
export const NewLine = closed({ orderid: Orderid, sku: Sku, qty: Qty })

/** The most batches one bulk request may carry; a client sends a larger import in chunks. */
export const MAX_BULK_BATCHES = 5000

export const NewBatches = closed({
  batches: Type.Array(NewBatch, {
    minItems: 1,
    maxItems: MAX_BULK_BATCHES,
    description: 'Added in one transaction: all of them, or none when one is invalid or conflicts',
  }),
})

export const BatchesAdded = Type.Object({
  added: Type.Integer({ minimum: 0, description: 'Batches that were new' }),
  present: Type.Integer({ minimum: 0, description: 'Batches that were there already, the same (nothing changed)' }),
})

export const MAX_HOLD_SECONDS = 86_400

/** The resource API's line: the book's three fields, and how to treat it when no batch can take it now. */
export const NewAllocation = closed({
  orderid: Orderid,
  sku: Sku,
  qty: Qty,
  backorder: Type.Optional(
    Type.Boolean({
      default: false,
      description: 'Keep the line waiting (202, status backordered) when no batch can take it, instead of a 409',
    }),
  ),
  holdSeconds: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_HOLD_SECONDS,
      description:
        'Hold the stock for a checkout for this many seconds (1 to 86400); sending the line again without it ' +
        'confirms the hold, with it extends the hold. Not together with backorder: true',
    }),
  ),
})
export const BatchQuantity = closed({ qty: Qty })
export const BatchEta = closed({ eta: Eta })
export const BatchChange = Type.Object(
  { qty: Type.Optional(Qty), eta: Type.Optional(Eta) },
  {
    additionalProperties: false,
    minProperties: 1,
    description: '`qty`, `eta` or both, changed in one transaction',
  },
)

export const RefParams = closed({ ref: Ref })
export const OrderParams = closed({ orderid: Orderid })
export const LineParams = closed({ orderid: Orderid, sku: Sku })
export const SkuParams = closed({ sku: Sku })

export const EventsQuery = closed({
  after: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        'Events after this id; leave out to read from the oldest event kept. Delivered events older than ' +
        'the retention period (`EVENTS_RETENTION_DAYS`) are removed: an id older than those answers 410 `events_pruned`',
    }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'At most this many' })),
})

export const StreamQuery = closed({
  after: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        'Start after this event id (a `Last-Event-ID` header takes precedence); leave out for new events only. ' +
        'An id older than the events kept answers 410 `events_pruned`',
    }),
  ),
})

export const StreamHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({ pattern: '^[0-9]{1,16}$', description: 'Resume after this event id, as a reconnecting reader does' }),
  ),
})

export const EventStream = Type.Unsafe<string>({
  description:
    'Server-Sent Events: per event `id: <outbox id>`, `event: <type>`, `data: <the event as JSON>`; a comment ' +
    'line (`: heartbeat`) when idle. A reader too slow to keep up is disconnected; it resumes with Last-Event-ID',
  content: { 'text/event-stream': { schema: { type: 'string' } } },
})

export const AvailabilityQuery = closed({ qty: Qty })

export const Availability = Type.Object({
  sku: Sku,
  qty: Qty,
  promise: Type.Union([Type.Object({ batchref: Batchref, eta: Eta }), Type.Null()], {
    description:
      'The batch an allocation of `qty` would take now (`eta` null: ships now; a date: arrives by then); ' +
      '`null` when no batch can take it',
  }),
  batches: Type.Array(
    Type.Object({
      ref: Ref,
      eta: Eta,
      available: Type.Integer(),
      fits: Type.Boolean({ description: 'Its available qty covers `qty`' }),
    }),
    { description: 'Every batch of the sku, in allocation preference order' },
  ),
})

export const Batch = Type.Object({
  ref: Ref,
  sku: Sku,
  eta: Eta,
  purchased: Count,
  allocated: Count,
  available: Type.Integer(),
})

export const Product = Type.Object({
  sku: Sku,
  batches: Type.Array(Batch, { description: 'In allocation preference order' }),
  totals: Type.Object({
    purchased: Count,
    allocated: Count,
    available: Type.Integer(),
    backordered: Type.Integer({ minimum: 0, description: 'Qty of the lines waiting for stock' }),
    held: Type.Integer({ minimum: 0, description: 'Qty on holds; part of allocated' }),
  }),
})

export const Products = Type.Array(Type.Object({ sku: Sku, totals: Product.properties.totals }), {
  description: 'Every sku with its totals, the least available stock first',
})

export const AllocationsQuery = closed({
  include: Type.Optional(Type.Literal('qty', { description: "Adds each allocation's qty to the answer" })),
})

// The book's end-to-end test compares the answer with `[{"sku", "batchref"}]` for equality, so qty is only
// added on request.
export const Allocations = Type.Array(Type.Object({ sku: Sku, batchref: Batchref, qty: Type.Optional(Qty) }))

const LineStatus = Type.Union([Type.Literal('allocated'), Type.Literal('held'), Type.Literal('backordered')], {
  description: 'allocated: served by a batch; held: reserved until expiresAt; backordered: waiting for stock',
})

/** A line in any state, as every route of the resource API shows it. */
export const Line = Type.Object({
  orderid: Orderid,
  sku: Sku,
  qty: Qty,
  status: LineStatus,
  batchref: Type.Unsafe<string | null>({
    type: ['string', 'null'],
    description: 'Reference of the batch serving the line; `null` when backordered',
  }),
  eta: Type.Unsafe<string | null>({
    type: ['string', 'null'],
    format: 'date',
    description: "The arrival date of the line's batch; `null` for warehouse stock and when backordered",
  }),
  expiresAt: Type.Unsafe<string | null>({
    type: ['string', 'null'],
    format: 'date-time',
    description: 'When a hold ends, ISO 8601 UTC; `null` unless held',
  }),
})

export const Order = Type.Object({
  orderid: Orderid,
  lines: Type.Array(Line, { description: 'In the order the lines were made' }),
})

/** Book compatibility: `batchref` is `null` when the line is out of stock. */
export const AllocateAnswer = Type.Object({ batchref: NullableBatchref })

/** Where a line taken off a shrunk batch went: its state now, or `released` for a hold with nowhere to go. */
const MovedStatus = Type.Union([...LineStatus.anyOf, Type.Literal('released')], {
  description:
    'Its state after the change: on another batch (allocated, held), waiting (backordered), or a hold ' +
    'released for want of room (released: no longer a line, so batchref, eta and expiresAt are null)',
})

export const BatchChanged = Type.Object({
  batch: Batch,
  moved: Type.Array(Type.Object({ ...Line.properties, status: MovedStatus }), {
    description: 'Each line taken off the batch, as it is now',
  }),
})

const event = <T extends string, P extends Parameters<typeof Type.Object>[0]>(type: T, properties: P) =>
  Type.Object({ id: Type.Integer({ minimum: 1 }), type: Type.Literal(type), ...properties })

export const Events = Type.Object({
  events: Type.Array(
    Type.Union([
      event('BatchCreated', { ref: Ref, sku: Sku, qty: Qty, eta: Eta }),
      event('BatchQuantityChanged', { ref: Ref, sku: Sku, qty: Qty }),
      event('BatchEtaChanged', { ref: Ref, sku: Sku, eta: Eta }),
      event('Allocated', { orderid: Orderid, sku: Sku, qty: Qty, batchref: Batchref }),
      event('Deallocated', {
        orderid: Orderid,
        sku: Sku,
        qty: Qty,
        batchref: Batchref,
        reason: Type.Union([Type.Literal('requested'), Type.Literal('batch-shrunk')]),
      }),
      event('OutOfStock', {
        orderid: Orderid,
        sku: Sku,
        qty: Qty,
        // Events stored before it existed have none.
        backordered: Type.Optional(
          Type.Boolean({ description: 'The line waits as a backorder (true) or was refused (false)' }),
        ),
      }),
      event('Backordered', { orderid: Orderid, sku: Sku, qty: Qty }),
      event('Held', { orderid: Orderid, sku: Sku, qty: Qty, batchref: Batchref, expiresAt: Type.String() }),
      event('HoldReleased', {
        orderid: Orderid,
        sku: Sku,
        qty: Qty,
        batchref: Batchref,
        reason: Type.Union([Type.Literal('expired'), Type.Literal('cancelled'), Type.Literal('batch-shrunk')]),
      }),
      event('BackorderCancelled', { orderid: Orderid, sku: Sku, qty: Qty }),
    ]),
  ),
  next: Type.Integer({ minimum: 0, description: 'Pass as `after` to read on' }),
})

export const Deallocated = Type.Null({ description: 'The line ended; no body' })

export const Health = Type.Object({ status: Type.Literal('ok') })

export const MetricsText = Type.Unsafe<string>({
  description: 'The Prometheus text exposition format',
  content: { 'text/plain': { schema: { type: 'string' } } },
})

export const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unready')]),
  checks: Type.Object({
    database: Type.String({ description: '`ok`, or why the database cannot serve' }),
    redis: Type.String({ description: '`ok`, `off` when Redis is not configured, or why it cannot serve' }),
  }),
})

/** The book's Flask answers `'OK', 201`; we answer the same word as a JSON string. */
export const Ok = Type.String({ description: 'Always "OK"' })

export const LinesQuery = closed({
  status: Type.Optional(
    Type.Union([Type.Literal('allocated'), Type.Literal('held'), Type.Literal('backordered')], {
      description: 'Only the lines in this state',
    }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'At most this many' })),
  after: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: "A page's `next`, to read on from there; leave out to start at the first line",
    }),
  ),
})

export const ProductLines = Type.Object({
  sku: Sku,
  lines: Type.Array(Line, { description: 'Oldest first (the backordered ones in the order they are filled)' }),
  next: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description: 'Pass as `after` to read the next page; `null` when no line follows',
  }),
})

export const MovesQuery = closed({ qty: Qty })

export const BatchMoves = Type.Object({
  ref: Ref,
  qty: Qty,
  moved: Type.Array(
    Type.Object({
      orderid: Orderid,
      sku: Sku,
      qty: Qty,
      status: MovedStatus,
      batchref: NullableBatchref,
    }),
    { description: 'Each line the change would take off the batch, with where it would go' },
  ),
})
