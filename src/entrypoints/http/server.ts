import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { createLogger } from '../../adapters/logger.ts'
import { bootstrap, type Service } from '../../bootstrap.ts'
import type { Config } from '../../config.ts'
import { startRedisConsumer } from '../redis-consumer.ts'
import { checkExposure, parseApiKeys } from './api-keys.ts'
import { type App, buildApp } from './app.ts'

export type Server = Readonly<{
  app: App
  service: Service
  /** Where it listens, e.g. `http://127.0.0.1:5005`. */
  url: string
  /** Stops taking connections, waits for the requests in flight, then closes the database. */
  close(): Promise<void>
}>

/**
 * Migrates the database and serves the API on `config.host:config.port`; logs one line saying where.
 * Throws `InvalidApiKeys` or `AnonymousRefused` before opening anything when the keys do not allow it.
 */
export async function startServer(
  config: Config,
  options: { logger?: Logger; logRequests?: boolean; relay?: boolean; consumer?: boolean } = {},
): Promise<Server> {
  const apiKeys = parseApiKeys(config.apiKeys)
  checkExposure(config.host, apiKeys, config.allowAnonymous)
  const logger = options.logger ?? createLogger(config.logLevel)
  const service = bootstrap(config, { logger })
  let app: App | undefined
  try {
    await service.migrate()
    app = buildApp(service, {
      logger,
      logRequests: options.logRequests ?? config.logRequests,
      apiKeys,
      // Without keys the service listens on the loopback interface only (checkExposure), unless told otherwise.
      loopbackOnly: !config.allowAnonymous,
      eventStream: { heartbeatMs: config.eventsHeartbeatMs, maxBufferedBytes: config.eventsMaxBufferedBytes },
    })
    // Fastify logs the listening line itself; the resolver makes it the one startup line we want.
    const url = await app.listen({
      host: config.host,
      port: config.port,
      listenTextResolver: (address) =>
        `Allocation service listening at ${address} (${storage(service, config)}); API docs at ${address}/docs`,
    })
    if (options.relay ?? true) service.relay.start()
    // Not waited for: it connects in the background and keeps trying while Redis is away.
    const consumer =
      config.redisUrl && (options.consumer ?? true)
        ? startRedisConsumer({ bus: service.bus, logger, redisUrl: config.redisUrl, metrics: service.metrics })
        : null
    const started = app
    return {
      app: started,
      service,
      url,
      async close() {
        await drainThenClose(started)
        await consumer?.stop()
        await service.close()
      },
    }
  } catch (error) {
    await app?.close()
    await service.close()
    throw error
  }
}

/**
 * How long connections kept alive between requests stay open after shutdown began. A request a client
 * sends on one meanwhile is answered (503 unavailable, `Connection: close`) instead of meeting a closed
 * socket; after it, the connections still idle are closed.
 */
const IDLE_DRAIN_MS = 1000

/** Stops listening, answers what is in flight and what arrives on open connections, then closes them all. */
async function drainThenClose(app: App): Promise<void> {
  const server = app.server
  const closeIdleConnections = server.closeIdleConnections.bind(server)
  // Node and Fastify close idle connections the moment the server stops listening; not yet.
  server.closeIdleConnections = () => {}
  const closed = app.close()
  await new Promise((resolve) => setTimeout(resolve, IDLE_DRAIN_MS))
  server.closeIdleConnections = closeIdleConnections
  closeIdleConnections()
  await closed
}

function storage(service: Service, config: Config): string {
  const database =
    service.database?.mode === 'pglite' ? `database: PGlite in ${resolve(config.dataDir)}` : 'database: PostgreSQL'
  const redis = config.redisUrl ? `${database}, Redis events and commands` : database
  return config.apiKeys ? `${redis}, API keys required` : redis
}
