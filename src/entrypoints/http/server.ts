import { resolve } from 'node:path'
import { type Logger, pino } from 'pino'
import { bootstrap, type Service } from '../../bootstrap.ts'
import type { Config } from '../../config.ts'
import { startRedisConsumer } from '../redis-consumer.ts'
import { type App, buildApp } from './app.ts'

export type Server = Readonly<{
  app: App
  service: Service
  /** Where it listens, e.g. `http://127.0.0.1:5005`. */
  url: string
  /** Stops taking connections, waits for the requests in flight, then closes the database. */
  close(): Promise<void>
}>

/** Migrates the database and serves the API on `config.host:config.port`; logs one line saying where. */
export async function startServer(
  config: Config,
  options: { logger?: Logger; logRequests?: boolean; relay?: boolean; consumer?: boolean } = {},
): Promise<Server> {
  const logger = options.logger ?? pino({ level: config.logLevel })
  const service = bootstrap(config, { logger })
  let app: App | undefined
  try {
    await service.migrate()
    app = buildApp(service, {
      logger,
      logRequests: options.logRequests ?? false,
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
        ? startRedisConsumer({ bus: service.bus, logger, redisUrl: config.redisUrl })
        : null
    const started = app
    return {
      app: started,
      service,
      url,
      async close() {
        await started.close()
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

function storage(service: Service, config: Config): string {
  const database =
    service.database?.mode === 'pglite' ? `database: PGlite in ${resolve(config.dataDir)}` : 'database: PostgreSQL'
  return config.redisUrl ? `${database}, Redis events and commands` : database
}
