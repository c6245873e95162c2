import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Service } from '../../bootstrap.ts'
import { UnknownBatch } from '../../domain/errors.ts'
import { UnknownProduct } from './errors.ts'
import { integerQuery } from './resource-routes.ts'
import { BatchMoves, errorResponses, LinesQuery, MovesQuery, ProductLines, RefParams, SkuParams } from './schemas.ts'

/** What an operator looks at before acting: a sku's lines, and what a batch change would move. */
export function operatorRoutes({ views, batchMoves }: Service): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/products/:sku/lines',
      {
        schema: {
          tags: ['products'],
          summary: "A sku's order lines, oldest first, in one state (status) or every state, a page at a time",
          params: SkuParams,
          querystring: LinesQuery,
          response: { 200: ProductLines, ...errorResponses(400, 404) },
        },
        preValidation: async (request) => integerQuery(request.query, ['limit', 'after']),
      },
      async (request) => {
        const { sku } = request.params
        const { status = null, limit = 100, after = 0 } = request.query
        const page = await views.lines(sku, { status, limit, after })
        if (!page) throw new UnknownProduct(sku)
        return { sku, ...page }
      },
    )

    app.get(
      '/batches/:ref/moves',
      {
        schema: {
          tags: ['batches'],
          summary:
            "The lines that setting the batch's purchased quantity to qty would move off it, and where each " +
            'would go (another batch, the backorder queue, or a hold released); changes nothing',
          params: RefParams,
          querystring: MovesQuery,
          response: { 200: BatchMoves, ...errorResponses(400, 404) },
        },
        preValidation: async (request) => integerQuery(request.query, ['qty']),
      },
      async (request) => {
        const { ref } = request.params
        const { qty } = request.query
        const moved = await batchMoves(ref, qty)
        if (!moved) throw new UnknownBatch(ref)
        return { ref, qty, moved }
      },
    )
  }
}
