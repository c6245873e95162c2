import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Service } from '../../bootstrap.ts'
import type { FeedReader } from '../../service-layer/event-feed.ts'
import type { StoredEvent } from '../../service-layer/ports.ts'
import { integerQuery, refuseIfPruned } from './resource-routes.ts'
import { EventStream, errorResponses, StreamHeaders, StreamQuery } from './schemas.ts'

export type EventStreamOptions = Readonly<{
  /** A comment line this often keeps proxies from closing an idle stream. */
  heartbeatMs: number
  /** Unsent bytes a reader may accumulate before it is disconnected. */
  maxBufferedBytes: number
}>

export const defaultEventStreamOptions: EventStreamOptions = { heartbeatMs: 15_000, maxBufferedBytes: 1_048_576 }

/** `GET /events/stream`: committed events as Server-Sent Events, resumable by outbox id. */
export function eventStreamRoutes(
  { feed, views, logger }: Service,
  options: EventStreamOptions = defaultEventStreamOptions,
): FastifyPluginAsyncTypebox {
  return async (app) => {
    const open = new Set<ServerResponse>()
    // A stream never ends by itself: end them all before the server waits for its connections.
    app.addHook('preClose', async () => {
      for (const res of open) res.end()
    })

    app.get(
      '/events/stream',
      {
        schema: {
          tags: ['events'],
          summary:
            'Committed events as they happen (Server-Sent Events), in outbox order; resumes after Last-Event-ID ' +
            'or ?after=, otherwise starts with the events committed after it connects',
          querystring: StreamQuery,
          headers: StreamHeaders,
          response: { 200: EventStream, ...errorResponses(400, 410) },
        },
        preValidation: async (request) => integerQuery(request.query, ['after']),
      },
      async (request, reply) => {
        const header = request.headers['last-event-id']
        const given = typeof header === 'string' ? Number(header) : request.query.after
        if (given !== undefined && !Number.isSafeInteger(given)) throw beyondExactIds()
        if (given !== undefined) {
          await refuseIfPruned(views, given, 'leave out Last-Event-ID and `after` to start with new events')
        }
        // A HEAD asks for the headers only: a stream would never end it.
        if (request.method === 'HEAD') return reply.type('text/event-stream; charset=utf-8').send('')
        const after = given ?? (await views.lastEventId())
        reply.hijack()
        const res = reply.raw
        res.writeHead(200, {
          'x-request-id': request.id,
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        })
        open.add(res)
        let stop = () => {}
        // Measured before writing, so one large page never drops a reader that keeps up; the buffer stays
        // under the bound plus one page.
        const write = (text: string) => {
          if (res.destroyed || res.writableEnded) return
          if (res.writableLength > options.maxBufferedBytes) {
            logger.info({ bufferedBytes: res.writableLength }, 'an event stream reader fell behind; disconnected it')
            res.destroy()
            return
          }
          res.write(text)
        }
        const heartbeat = setInterval(() => write(': heartbeat\n\n'), options.heartbeatMs)
        res.on('close', () => {
          clearInterval(heartbeat)
          open.delete(res)
          stop()
        })
        const reader: FeedReader = {
          send: (events) => write(events.map(format).join('')),
          ready: () => drained(res),
        }
        write(': connected\n\n')
        try {
          const unsubscribe = await feed.subscribe(after, reader)
          if (res.destroyed || res.writableEnded) unsubscribe()
          else stop = unsubscribe
        } catch (error) {
          logger.warn({ err: error }, 'could not start an event stream; the reader may reconnect')
          res.end()
        }
      },
    )
  }
}

function format({ id, event }: StoredEvent): string {
  return `id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`
}

function drained(res: ServerResponse): Promise<void> {
  if (!res.writableNeedDrain || res.destroyed) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** A `Last-Event-ID` past the largest id a number holds exactly, refused as the schema refuses such an `after`. */
function beyondExactIds(): Error {
  const limit = Number.MAX_SAFE_INTEGER
  return Object.assign(new Error(`Last-Event-ID must be at most ${limit}`), {
    code: 'FST_ERR_VALIDATION',
    statusCode: 400,
    validationContext: 'headers',
    validation: [
      { keyword: 'maximum', instancePath: '/last-event-id', schemaPath: '', params: { limit }, message: '' },
    ],
  })
}
