import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Service } from '../../bootstrap.ts'
import { InvalidSku, NotAllocated, UnknownBatch } from '../../domain/errors.ts'
import type { ProductView, ReadViews } from '../../service-layer/ports.ts'
import { EventsPruned, LineOutOfStock, UnknownOrder, UnknownProduct } from './errors.ts'
import {
  Availability,
  AvailabilityQuery,
  Batch,
  BatchChange,
  BatchChanged,
  Deallocated,
  Events,
  EventsQuery,
  errorResponses,
  Line,
  LineParams,
  NewAllocation,
  NewBatch,
  Order,
  OrderParams,
  Product,
  Products,
  RefParams,
  SkuParams,
} from './schemas.ts'

/** The product's own API: resources with richer answers than the book's routes. */
/** The JSON answer of each product view still in memory (views are read-only: a change is a new view). */
const answers = new WeakMap<ProductView, string>()

export function resourceRoutes({ bus, views, availability }: Service): FastifyPluginAsyncTypebox {
  const batchView = async (ref: string) => {
    const batch = await views.batch(ref)
    if (!batch) throw new UnknownBatch(ref)
    return batch
  }

  return async (app) => {
    app.post(
      '/batches',
      {
        schema: {
          tags: ['batches'],
          summary: 'Add a batch; the same batch again answers 200 with it, another batch under its ref 409',
          body: NewBatch,
          response: { 200: Batch, 201: Batch, ...errorResponses(400, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const { ref, sku, qty, eta } = request.body
        const { created } = await bus.handle({ type: 'CreateBatch', ref, sku, qty, eta })
        const batch = await batchView(ref)
        if (!created) return reply.code(200).send(batch)
        return reply
          .code(201)
          .header('location', `/batches/${encodeURIComponent(ref)}`)
          .send(batch)
      },
    )

    app.get(
      '/batches/:ref',
      {
        schema: {
          tags: ['batches'],
          summary: 'A batch with its purchased, allocated and available quantities',
          params: RefParams,
          response: { 200: Batch, ...errorResponses(400, 404) },
        },
      },
      async (request) => batchView(request.params.ref),
    )

    app.patch(
      '/batches/:ref',
      {
        schema: {
          tags: ['batches'],
          summary:
            "Change a batch's purchased quantity (lines that no longer fit move to other batches), its eta " +
            '(a later date, or null when it arrived: lines on it stay), or both in one transaction',
          params: RefParams,
          body: BatchChange,
          response: { 200: BatchChanged, ...errorResponses(400, 404, 413, 415) },
        },
      },
      async (request) => {
        const { ref } = request.params
        const { qty = null, eta } = request.body
        const { deallocated } = await bus.handle({
          type: 'ChangeBatch',
          ref,
          qty,
          eta: eta === undefined ? null : { to: eta },
        })
        // The bus has reallocated every moved line before answering, so the views show where each went.
        const moved = await Promise.all(
          deallocated.map(async ({ orderid, sku, qty }) => {
            const now = (await views.order(orderid)).find((l) => l.sku === sku)
            return now ?? { orderid, sku, qty, status: 'released' as const, batchref: null, eta: null, expiresAt: null }
          }),
        )
        return { batch: await batchView(ref), moved }
      },
    )

    app.post(
      '/allocations',
      {
        schema: {
          tags: ['allocations'],
          summary:
            'Allocate an order line (201), hold it for a checkout (holdSeconds, 201) or keep it waiting for ' +
            'stock (backorder, 202); 409 out_of_stock when no batch can take it and it may not wait',
          body: NewAllocation,
          response: { 201: Line, 202: Line, ...errorResponses(400, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const { orderid, sku, qty, backorder = false, holdSeconds = null } = request.body
        const { status, batchref, eta, expiresAt } = await bus.handle({
          type: 'Allocate',
          orderid,
          sku,
          qty,
          backorder,
          holdSeconds,
        })
        if (status === 'out_of_stock') throw new LineOutOfStock(orderid, sku, qty)
        return reply
          .code(status === 'backordered' ? 202 : 201)
          .header('location', `/orders/${encodeURIComponent(orderid)}`)
          .send({ orderid, sku, qty, status, batchref, eta, expiresAt })
      },
    )

    app.get(
      '/orders/:orderid',
      {
        schema: {
          tags: ['allocations'],
          summary: "An order's lines in every state (allocated, held, backordered); 404 when it has none",
          params: OrderParams,
          response: { 200: Order, ...errorResponses(400, 404) },
        },
      },
      async (request) => {
        const { orderid } = request.params
        const lines = await views.order(orderid)
        if (lines.length === 0) throw new UnknownOrder(orderid, 'lines')
        return { orderid, lines }
      },
    )

    app.delete(
      '/allocations/:orderid/:sku',
      {
        schema: {
          tags: ['allocations'],
          summary: 'End an order line in any state (allocated, held, backordered); 404 when there is none',
          params: LineParams,
          response: { 204: Deallocated, ...errorResponses(400, 404) },
        },
      },
      async (request, reply) => {
        const { orderid, sku } = request.params
        try {
          await bus.handle({ type: 'Deallocate', orderid, sku })
        } catch (error) {
          // In a URL an unknown sku is an unknown resource: the line is simply not allocated.
          if (error instanceof InvalidSku) throw new NotAllocated(orderid, sku)
          throw error
        }
        return reply.code(204).send(null)
      },
    )

    app.get(
      '/products',
      {
        schema: {
          tags: ['products'],
          summary:
            'Every sku with its totals (purchased, allocated, available, held, backordered), shortest stock first',
          response: { 200: Products },
        },
      },
      async () => views.products(),
    )

    app.get(
      '/products/:sku',
      {
        schema: {
          tags: ['products'],
          summary: 'Stock of a sku: its batches in allocation order, and totals (with the qty held and waiting)',
          params: SkuParams,
          response: { 200: Product, ...errorResponses(400, 404) },
        },
      },
      async (request, reply) => {
        const { sku } = request.params
        const product = await views.product(sku)
        if (!product) throw new UnknownProduct(sku)
        // A view unchanged since the last read is the same object: its answer is sent as it was written.
        const body = answers.get(product) ?? String(reply.serialize(product))
        answers.set(product, body)
        return reply
          .type('application/json; charset=utf-8')
          .serializer(() => body)
          .send(product)
      },
    )

    app.get(
      '/products/:sku/availability',
      {
        schema: {
          tags: ['products'],
          summary:
            'Available to promise: the batch an allocation of qty would take now (promise.eta null: ships now; ' +
            'a date: arrives by then), and every batch in preference order with whether it fits',
          params: SkuParams,
          querystring: AvailabilityQuery,
          response: { 200: Availability, ...errorResponses(400, 404) },
        },
        preValidation: async (request) => integerQuery(request.query, ['qty']),
      },
      async (request) => {
        const { sku } = request.params
        const answer = await availability(sku, request.query.qty)
        if (!answer) throw new UnknownProduct(sku)
        return answer
      },
    )

    app.get(
      '/events',
      {
        schema: {
          tags: ['events'],
          summary: 'Domain events in outbox order, after an id',
          querystring: EventsQuery,
          response: { 200: Events, ...errorResponses(400, 410) },
        },
        preValidation: async (request) => integerQuery(request.query, ['after', 'limit']),
      },
      async (request) => {
        const { after = 0, limit = 100 } = request.query
        if (request.query.after !== undefined) {
          await refuseIfPruned(views, after, 'leave out `after` to read from the oldest event kept')
        }
        const stored = await views.events(after, limit)
        const events = stored.map(({ id, event }) => ({ id, ...event }))
        return { events, next: stored.at(-1)?.id ?? after }
      },
    )
  }
}

/** Throws `EventsPruned` when events after `after` may have been removed for their age. */
export async function refuseIfPruned(
  views: Pick<ReadViews, 'prunedThrough'>,
  after: number,
  instead: string,
): Promise<void> {
  const prunedThrough = await views.prunedThrough()
  if (after < prunedThrough) throw new EventsPruned(after, prunedThrough, instead)
}

/**
 * Query values are always strings and coercion is off: read whole numbers as numbers here, so the schema
 * (and the document) can say integer and reject "1.5" or "x" with a sentence naming the parameter.
 */
export function integerQuery(query: unknown, names: readonly string[]): void {
  const values = query as Record<string, unknown>
  for (const name of names) {
    const value = values[name]
    if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) values[name] = Number(value)
  }
}
