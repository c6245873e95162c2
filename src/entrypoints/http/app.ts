import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import packageJson from '../../../package.json' with { type: 'json' }
import { logContext } from '../../adapters/logger.ts'
import type { Service } from '../../bootstrap.ts'
import { type ApiKey, requireApiKeys, requireLoopbackHost } from './api-keys.ts'
import { bookRoutes } from './book-routes.ts'
import { bulkRoutes } from './bulk-routes.ts'
import { dashboardRoutes } from './dashboard.ts'
import { answerFor, type ErrorAnswer, notFoundAnswer, shuttingDownAnswer } from './errors.ts'
import { type EventStreamOptions, eventStreamRoutes } from './event-stream.ts'
import { operatorRoutes } from './operator-routes.ts'
import { resourceRoutes } from './resource-routes.ts'
import { serviceRoutes } from './service-routes.ts'

export const BODY_LIMIT = 1_048_576
/** How long a request (its headers and body) may take to arrive. */
const REQUEST_TIMEOUT_MS = 60_000

export type AppOptions = Readonly<{
  /** Fastify's own logger (the service's pino logger in production); without one Fastify logs nothing. */
  logger?: FastifyBaseLogger
  /** A log line per request; off by default so the log stays about the service. */
  logRequests?: boolean
  /** Without keys, answer the API only to requests addressed to the loopback interface (`requireLoopbackHost`). */
  loopbackOnly?: boolean
  /** Heartbeat and slow-reader bound of `GET /events/stream`. */
  eventStream?: EventStreamOptions
  /** The keys the API routes require; none: the API is open (the caller decides whether that is safe). */
  apiKeys?: readonly ApiKey[]
}>

/** One line per request, when it is answered: its id (bound by Fastify), the key's name, the outcome. */
class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const line = {
      method: request.method,
      url: request.url,
      route: request.routeOptions.url ?? null,
      statusCode: reply.statusCode,
      responseTime: reply.elapsedTime,
      apiKey: request.apiKey?.name ?? null,
    }
    if (error) reply.log.error({ ...line, err: error }, 'request errored')
    else reply.log.info(line, 'request completed')
  }
}

/** How long a client refused a 413 may go on sending its body before the connection is closed on it. */
const DRAIN_TIMEOUT_MS = 10_000

/**
 * Fastify closes the connection after a 413 while the client is still sending the body; the client then
 * sees a reset (EPIPE) instead of the answer. Reading the rest of the body into nothing lets the answer
 * arrive, and the connection serves its next request; a client that never finishes is cut off after a while.
 */
function readRestOfBody(request: FastifyRequest, reply: FastifyReply): void {
  const incoming = request.raw
  if (incoming.readableEnded) return
  reply.removeHeader('connection')
  const cutOff = setTimeout(() => incoming.socket.destroy(), DRAIN_TIMEOUT_MS).unref()
  incoming.once('end', () => clearTimeout(cutOff))
  incoming.once('close', () => clearTimeout(cutOff))
  incoming.resume()
}

/** A caller's `x-request-id` when it is a plain token, otherwise a new one. */
function requestId(request: IncomingMessage): string {
  const given = request.headers['x-request-id']
  return typeof given === 'string' && /^[\x21-\x7e]{1,200}$/.test(given) ? given : randomUUID()
}

/** The HTTP API over `service`, ready to `listen()` or `inject()`. */
export function buildApp(service: Service, options: AppOptions = {}) {
  const send = (reply: FastifyReply, request: FastifyRequest, error: unknown, answer: ErrorAnswer) => {
    const context = { reqId: request.id, method: request.method, url: request.url }
    if (answer.status === 500) service.logger.error({ ...context, err: error }, 'request failed')
    else if (answer.status >= 500)
      service.logger.warn({ ...context, reason: (error as Error | null)?.message }, answer.body.message)
    if (answer.retryAfter !== undefined) reply.header('retry-after', String(answer.retryAfter))
    return reply.code(answer.status).send(answer.body)
  }
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    logController: new RequestLog({ disableRequestLogging: !options.logRequests }),
    genReqId: requestId,
    // Answered by the onRequest hook below, in the service's error shape.
    return503OnClosing: false,
    bodyLimit: BODY_LIMIT,
    // A request must arrive whole within this (Fastify's default is no limit): a client dribbling a body
    // would otherwise hold its connection for as long as it likes. An answer, an event stream's too, may last.
    requestTimeout: REQUEST_TIMEOUT_MS,
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
      const { code } = error as NodeJS.ErrnoException
      if (code === 'ECONNRESET' || !socket.writable) return
      const [status, body] =
        code === 'HPE_HEADER_OVERFLOW'
          ? [
              '431 Request Header Fields Too Large',
              { message: 'The request headers are too large', code: 'headers_too_large' },
            ]
          : ['400 Bad Request', { message: 'The request is not valid HTTP', code: 'bad_request' }]
      const text = JSON.stringify(body)
      socket.end(
        `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      )
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Only JSON bodies: anything else is a 415 rather than a string that fails validation.
  app.removeContentTypeParser('text/plain')
  app.setErrorHandler((error, request, reply) => send(reply, request, error, answerFor(error)))
  app.setNotFoundHandler((request, reply) => send(reply, request, null, notFoundAnswer(request.method, request.url)))
  app.decorateRequest('apiKey', null)

  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (!closing) return done()
    // Arrived on a connection already open when shutdown began: refused before anything is done.
    reply.header('connection', 'close')
    void send(reply, request, null, shuttingDownAnswer)
  })
  app.addHook('onSend', (request, reply, payload, done) => {
    // Once shutdown began no connection is kept for another request, so the server can finish closing.
    if (closing) reply.header('connection', 'close')
    if (reply.statusCode === 413) readRestOfBody(request, reply)
    done(null, payload)
  })
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? '(unmatched)'
    service.metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000)
    done()
  })
  // The handler runs inside this call, so whatever the service logs on its behalf carries the request's id.
  app.addHook('preHandler', (request, _reply, done) => logContext.run({ reqId: request.id }, done))

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
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API key secret from API_KEYS; read keys may only GET, write keys may do anything',
          },
        },
      },
      security: [{ apiKey: [] }],
    },
  })
  app.register(swaggerUi, {
    routePrefix: '/docs',
    // Same origin as the dashboard, whose key is in this tab's storage: never inside another site's frame.
    uiHooks: {
      onRequest: (_request, reply, done) => {
        reply.header('content-security-policy', "frame-ancestors 'none'")
        reply.header('x-frame-options', 'DENY')
        reply.header('x-content-type-options', 'nosniff')
        done()
      },
    },
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  app.register(serviceRoutes(service))

  app.register(dashboardRoutes())

  // The API proper, behind the keys when there are any; the service routes, the docs and the dashboard stay open.
  const apiKeys = options.apiKeys ?? []
  app.register(async (api) => {
    if (apiKeys.length > 0) await requireApiKeys(api, apiKeys)
    else if (options.loopbackOnly) requireLoopbackHost(api)
    api.register(bookRoutes(service))
    api.register(resourceRoutes(service))
    api.register(bulkRoutes(service))
    api.register(operatorRoutes(service))
    api.register(eventStreamRoutes(service, options.eventStream))
  })
  return app
}

export type App = ReturnType<typeof buildApp>
