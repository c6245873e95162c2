import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Service } from '../../bootstrap.ts'
import { ConflictingBatch } from '../../service-layer/handlers.ts'
import { BatchesAdded, errorResponses, NewBatches } from './schemas.ts'

/**
 * `POST /batches/bulk`: many batches in one transaction, so that an import runs into a live service at
 * the speed of a multi-row insert. Sending the same batches again changes nothing.
 */
export function bulkRoutes({ bus }: Service): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      '/batches/bulk',
      {
        schema: {
          tags: ['batches'],
          summary:
            'Add many batches in one transaction (an import sends its file in chunks): all or none; batches ' +
            'already there, the same, are counted as present; a batch under an existing ref with another sku, ' +
            'qty or eta is a 409 naming its place in the list',
          body: NewBatches,
          response: { 200: BatchesAdded, ...errorResponses(400, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        try {
          return await bus.handle({ type: 'CreateBatches', batches: request.body.batches })
        } catch (error) {
          if (!(error instanceof ConflictingBatch)) throw error
          const field = `batches.${error.index}.ref`
          return reply.code(409).send({
            message: `${error.message} (batches[${error.index}])`,
            code: 'batch_conflict',
            details: [{ location: 'body', field, rule: 'conflict', message: error.message }],
          })
        }
      },
    )
  }
}
