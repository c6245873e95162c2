import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import packageJson from '../../../package.json' with { type: 'json' }
import type { Service } from '../../bootstrap.ts'
import { bookRoutes } from './book-routes.ts'
import { bulkRoutes } from './bulk-routes.ts'
import { answerFor, type ErrorAnswer, notFoundAnswer } from './errors.ts'
import { type EventStreamOptions, eventStreamRoutes } from './event-stream.ts'
import { resourceRoutes } from './resource-routes.ts'

export const BODY_LIMIT = 1_048_576

export type AppOptions = Readonly<{
  /** Fastify's own logger (the service's pino logger in production); without one Fastify logs nothing. */
  logger?: FastifyBaseLogger
  /** A log line per request; off by default so the log stays about the service. */
  logRequests?: boolean
  /** Heartbeat and slow-reader bound of `GET /events/stream`. */
  eventStream?: EventStreamOptions
}>

/** The HTTP API over `service`, ready to `listen()` or `inject()`. */
export function buildApp(service: Service, options: AppOptions = {}) {
  const send = (reply: FastifyReply, request: FastifyRequest, error: unknown, answer: ErrorAnswer) => {
    if (answer.status >= 500)
      service.logger.error({ err: error, method: request.method, url: request.url }, 'request failed')
    return reply.code(answer.status).send(answer.body)
  }
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: !options.logRequests }),
    bodyLimit: BODY_LIMIT,
    // An id is up to 255 characters, each up to 12 once percent-encoded; the schema then checks the decoded id.
    routerOptions: { maxParamLength: 255 * 12 },
    ajv: {
      customOptions: {
        // Fastify's defaults coerce ("5" becomes 5) and drop unknown fields; the contract says neither.
        coerceTypes: false,
        removeAdditional: false,
        allowUnionTypes: true,
      },
    },
    frameworkErrors: (error, request, reply) => send(reply, request, error, answerFor(error)),
    // A request Node's HTTP parser rejects never reaches a route; answer it in the same error shape.
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || !socket.writable) return
      const body = JSON.stringify({ message: 'The request is not valid HTTP', code: 'bad_request' })
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      )
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Only JSON bodies: anything else is a 415 rather than a string that fails validation.
  app.removeContentTypeParser('text/plain')
  app.setErrorHandler((error, request, reply) => send(reply, request, error, answerFor(error)))
  app.setNotFoundHandler((request, reply) => send(reply, request, null, notFoundAnswer(request.method, request.url)))

  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Allocation service',
        version: packageJson.version,
        description: packageJson.description,
      },
      tags: [
        { name: 'book', description: "The routes of the book's Flask app, with its answers" },
        { name: 'batches' },
        { name: 'allocations' },
        { name: 'products' },
        { name: 'events' },
        { name: 'service' },
      ],
    },
  })
  app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  app.register(bookRoutes(service))
  app.register(resourceRoutes(service))
  app.register(bulkRoutes(service))
  app.register(eventStreamRoutes(service, options.eventStream))
  return app
}

export type App = ReturnType<typeof buildApp>
