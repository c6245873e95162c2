import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Service } from '../../bootstrap.ts'
import { UnknownOrder } from './errors.ts'
import {
  AllocateAnswer,
  Allocations,
  AllocationsQuery,
  errorResponses,
  NewBatch,
  NewLine,
  Ok,
  OrderParams,
} from './schemas.ts'

/** The book's Flask routes with the book's answers, so its end-to-end tests pass against this service. */
export function bookRoutes({ bus, views }: Service): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/add_batch',
      {
        schema: {
          tags: ['book'],
          summary: 'Add a batch (the book answers 201 "OK")',
          body: NewBatch,
          response: { 201: Ok, ...errorResponses(400, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const { ref, sku, qty, eta } = request.body
        await bus.handle({ type: 'CreateBatch', ref, sku, qty, eta })
        // Fastify sends a string as it is once the type says JSON, so it is encoded here.
        return reply.code(201).type('application/json; charset=utf-8').send(JSON.stringify('OK'))
      },
    )

    app.post(
      '/allocate',
      {
        schema: {
          tags: ['book'],
          summary: 'Allocate an order line; 202 also when out of stock (batchref null)',
          body: NewLine,
          response: { 202: AllocateAnswer, ...errorResponses(400, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const { orderid, sku, qty } = request.body
        const { batchref } = await bus.handle({ type: 'Allocate', orderid, sku, qty })
        return reply.code(202).send({ batchref })
      },
    )

    app.get(
      '/allocations/:orderid',
      {
        schema: {
          tags: ['book', 'allocations'],
          summary: "An order's allocations: the book's [{sku, batchref}], with qty when include=qty",
          params: OrderParams,
          querystring: AllocationsQuery,
          response: { 200: Allocations, ...errorResponses(400, 404) },
        },
      },
      async (request) => {
        const { orderid } = request.params
        const allocations = await views.allocations(orderid)
        if (allocations.length === 0) throw new UnknownOrder(orderid)
        if (request.query.include === 'qty') return allocations
        return allocations.map(({ sku, batchref }) => ({ sku, batchref }))
      },
    )
  }
}
