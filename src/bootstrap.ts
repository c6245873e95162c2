import { EmailNotifications } from './adapters/email-notifications.ts'
import { LoggedNotifications } from './adapters/logged-notifications.ts'
import { createLogger } from './adapters/logger.ts'
import { type Database, openDatabase } from './adapters/postgres/database.ts'
import { embeddedUpkeep } from './adapters/postgres/embedded-upkeep.ts'
import { PgExpiredHolds } from './adapters/postgres/expired-holds.ts'
import { databaseCheck } from './adapters/postgres/health.ts'
import { migrateToLatest } from './adapters/postgres/migrator.ts'
import { PgOutbox } from './adapters/postgres/outbox.ts'
import { retention } from './adapters/postgres/retention.ts'
import { pgUnitOfWork } from './adapters/postgres/unit-of-work.ts'
import { PgViews } from './adapters/postgres/views.ts'
import { PrometheusMetrics } from './adapters/prometheus-metrics.ts'
import { createRedisClient, redisCheck } from './adapters/redis-connection.ts'
import { RedisEventPublisher } from './adapters/redis-publisher.ts'
import type { Config } from './config.ts'
import { type Availability, availableToPromise } from './service-layer/availability.ts'
import { batchMoves, type LineMove } from './service-layer/batch-moves.ts'
import { createEventFeed, type EventFeed } from './service-layer/event-feed.ts'
import { createHoldExpiry } from './service-layer/hold-expiry.ts'
import { type BusDependencies, createMessageBus, type MessageBus } from './service-layer/message-bus.ts'
import { createOutboxRelay, type OutboxRelay } from './service-layer/outbox-relay.ts'
import { together } from './service-layer/periodic-sweep.ts'
import { type ExpiredHolds, type Logger, type ReadViews, systemClock } from './service-layer/ports.ts'

export type Overrides = Partial<Omit<BusDependencies, 'maxAttempts' | 'metrics'>> & {
  views?: ReadViews
  database?: Database
  expiredHolds?: ExpiredHolds
}

export type Service = Readonly<{
  bus: MessageBus
  views: ReadViews
  /** Committed events as they come, for every reader of the event stream at once. */
  feed: EventFeed
  /** What an allocation of `qty` of `sku` would get now, from the domain's own rule; `undefined`: no such sku. */
  availability(sku: string, qty: number): Promise<Availability | undefined>
  /** The lines a change of batch `ref` to `qty` would move, and where; changes nothing. `undefined`: no such batch. */
  batchMoves(ref: string, qty: number): Promise<LineMove[] | undefined>
  logger: Logger
  /** What the service counts, and the HTTP layer's timings, for `GET /metrics`. */
  metrics: PrometheusMetrics
  /**
   * Finishes deliveries that did not finish in line, releases expired holds, removes delivered events past
   * their retention and, on the embedded database, vacuums and analyzes its tables; `start()` it in the
   * process that should sweep.
   */
  relay: OutboxRelay
  /** `null` when every storage port was overridden (tests with fakes). */
  database: Database | null
  /** Whether the database (and Redis, when configured) answer within 1 s and the schema is current. */
  readiness(): Promise<Readiness>
  /** Brings the schema up to date; a no-op without a database. */
  migrate(): Promise<void>
  close(): Promise<void>
}>

/** Each check is `ok`, `off` (not configured) or the reason it failed. */
export type Readiness = Readonly<{ ready: boolean; checks: Readonly<{ database: string; redis: string }> }>

const READINESS_TIMEOUT_MS = 1000

/** The composition root: real adapters for whatever `overrides` does not provide. Connects lazily. */
export function bootstrap(config: Config, overrides: Overrides = {}): Service {
  const logger = overrides.logger ?? createLogger(config.logLevel)
  const needsDatabase = !(overrides.startUnitOfWork && overrides.outbox && overrides.views && overrides.expiredHolds)
  const database =
    overrides.database ??
    (needsDatabase
      ? openDatabase({
          databaseUrl: config.databaseUrl,
          dataDir: config.dataDir,
          poolSize: config.poolSize,
          connectTimeoutMs: config.databaseConnectTimeoutMs,
          statementTimeoutMs: config.databaseStatementTimeoutMs,
          onConnectionError: (error) =>
            logger.warn({ err: error }, 'A database connection broke; the pool replaces it'),
        })
      : null)
  const require = () => {
    if (!database) throw new Error('No database configured')
    return database
  }
  const outbox = overrides.outbox ?? new PgOutbox(require())
  // Publishing happens in line with a write: a command timeout turns a Redis outage into a failed
  // delivery, which the outbox retries, instead of a request left hanging.
  const redis =
    !overrides.publisher && config.redisUrl
      ? createRedisClient(config.redisUrl, { name: 'allocation-publisher', logger, commandTimeoutMs: 2000 })
      : null
  // Deliveries that failed while Redis or the mail server was down wait out a backoff of up to 10 minutes;
  // once it works again they go at the relay's next sweep.
  const onRecovered = () =>
    void outbox
      .retryNow()
      .catch((error: unknown) =>
        logger.warn({ err: error }, 'could not make the waiting deliveries due now; they go after their backoff'),
      )
  const email =
    !overrides.notifications && config.smtpUrl
      ? new EmailNotifications({
          smtpUrl: config.smtpUrl,
          to: config.stockTeamEmail,
          from: config.mailFrom,
          logger,
          onRecovered,
        })
      : null
  const clock = overrides.clock ?? systemClock
  const metrics = new PrometheusMetrics(database, logger)
  const startUnitOfWork = overrides.startUnitOfWork ?? pgUnitOfWork(require())
  const bus = createMessageBus({
    clock,
    startUnitOfWork,
    outbox,
    notifications: overrides.notifications ?? email ?? new LoggedNotifications(logger),
    // Without Redis the events stay readable from the outbox (GET /events): nothing to publish to.
    publisher:
      overrides.publisher ??
      (redis ? new RedisEventPublisher(redis, { logger, onRecovered }) : { publish: async () => {} }),
    logger,
    metrics,
  })
  const expiredHolds = overrides.expiredHolds ?? new PgExpiredHolds(require())
  const relay = together(
    createOutboxRelay({ bus, outbox, logger }),
    createHoldExpiry({ bus, expiredHolds, clock, logger }),
    ...(database && config.eventsRetentionDays > 0
      ? [retention(database, logger, { days: config.eventsRetentionDays })]
      : []),
    // An embedded database this service opened has no autovacuum but this.
    ...(database && !overrides.database && database.mode === 'pglite' ? [embeddedUpkeep(database, logger)] : []),
  )
  const views = overrides.views ?? new PgViews(require())
  const feed = createEventFeed({ views, logger, intervalMs: config.eventsPollMs })
  return {
    bus,
    views,
    feed,
    availability: (sku, qty) => availableToPromise(startUnitOfWork, sku, qty),
    batchMoves: (ref, qty) => batchMoves(startUnitOfWork, ref, qty),
    logger,
    metrics,
    relay,
    database,
    async readiness() {
      const [databaseStatus, redisStatus] = await Promise.all([
        database ? within(READINESS_TIMEOUT_MS, databaseCheck(database)) : 'ok',
        redis ? within(READINESS_TIMEOUT_MS, redisCheck(redis)) : 'off',
      ])
      const checks = { database: databaseStatus, redis: redisStatus }
      return { ready: Object.values(checks).every((c) => c === 'ok' || c === 'off'), checks }
    },
    async migrate() {
      if (!database) return
      if (overrides.database || !config.databaseUrl) {
        // Migrations run in a transaction: on the embedded database, nothing else may run meanwhile.
        const release = await database.acquireExclusive()
        return void (await migrateToLatest(database.db).finally(release))
      }
      // A migration may rewrite a large table: it gets a connection of its own, without the statement timeout.
      const migrating = openDatabase({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        poolSize: 1,
        connectTimeoutMs: config.databaseConnectTimeoutMs,
        statementTimeoutMs: 0,
      })
      try {
        await migrateToLatest(migrating.db)
      } finally {
        await migrating.close()
      }
    },
    async close() {
      feed.close()
      await relay.stop()
      if (outbox instanceof PgOutbox) await outbox.flush()
      await database?.close()
      redis?.disconnect()
      email?.close()
    },
  }
}

/** The check's answer, or a reason if it takes longer than `ms`. */
async function within(ms: number, check: Promise<string>): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`did not answer within ${ms} ms`), ms)
  })
  try {
    return await Promise.race([check, late])
  } finally {
    clearTimeout(timer)
  }
}
