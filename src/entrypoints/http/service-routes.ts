import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Service } from '../../bootstrap.ts'
import { Health, MetricsText, Readiness } from './schemas.ts'

/** What load balancers and monitoring read; open without an API key. */
export function serviceRoutes({ readiness, metrics }: Service): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      '/health',
      {
        schema: {
          tags: ['service'],
          summary: 'Answers while the process serves requests (liveness)',
          security: [],
          response: { 200: Health },
        },
      },
      async () => ({ status: 'ok' as const }),
    )

    app.get(
      '/ready',
      {
        schema: {
          tags: ['service'],
          summary:
            'Whether the service can serve now: the database (and Redis, when configured) answer within 1 s and ' +
            'its migrations are run; 503 unready with the failing check’s reason otherwise',
          security: [],
          response: { 200: Readiness, 503: Readiness },
        },
      },
      async (_request, reply) => {
        const { ready, checks } = await readiness()
        if (ready) return { status: 'ready' as const, checks }
        return reply
          .code(503)
          .header('retry-after', '2')
          .send({ status: 'unready' as const, checks })
      },
    )

    app.get(
      '/metrics',
      {
        schema: {
          tags: ['service'],
          summary:
            'Prometheus metrics: the process, request durations by route, lines by outcome, retried write ' +
            'conflicts, the outbox backlog, dead letters and the database pool',
          security: [],
          response: { 200: MetricsText },
        },
      },
      async (_request, reply) => reply.type(metrics.contentType).send(await metrics.exposition()),
    )
  }
}
