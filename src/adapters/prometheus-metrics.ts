import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from '@prometheus-io/client'
import type { LineOutcome, Logger, Metrics } from '../service-layer/ports.ts'
import type { Database } from './postgres/database.ts'
import { outboxBacklog } from './postgres/health.ts'

/** Node's and the process's own figures, gathered once per process however many services it builds. */
let processRegistry: Registry | undefined

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/**
 * The service's metrics in the Prometheus text format. Counters move as the service works; the outbox
 * backlog and the pool are read when scraped, so they cost nothing between scrapes.
 */
export class PrometheusMetrics implements Metrics {
  readonly #registry = new Registry()
  readonly #lines: Counter<'outcome'>
  readonly #conflicts: Counter
  readonly #deadLetters: Counter
  readonly #requests: Histogram<'method' | 'route' | 'status_code'>

  constructor(database: Database | null, logger: Logger) {
    const registers = [this.#registry]
    this.#lines = new Counter({
      name: 'allocation_lines_total',
      help: 'Order lines sent to be allocated, by what became of them',
      labelNames: ['outcome'],
      registers,
    })
    for (const outcome of ['allocated', 'held', 'backordered', 'out_of_stock', 'line_conflict'] as const) {
      this.#lines.inc({ outcome }, 0)
    }
    this.#conflicts = new Counter({
      name: 'allocation_write_conflicts_total',
      help: 'Transactions that lost a race for their product and were tried again',
      registers,
    })
    this.#deadLetters = new Counter({
      name: 'allocation_dead_letters_total',
      help: 'Messages from Redis that could not be applied and went to the dead-letter stream',
      registers,
    })
    this.#requests = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    if (database) this.#databaseGauges(database, logger)
  }

  lineOutcome(outcome: LineOutcome): void {
    this.#lines.inc({ outcome })
  }

  writeConflictRetried(): void {
    this.#conflicts.inc()
  }

  deadLettered(): void {
    this.#deadLetters.inc()
  }

  /** `route` is the route's template (`/batches/:ref`), never the URL, so the series stay few. */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    this.#requests.observe({ method, route, status_code: String(statusCode) }, seconds)
  }

  readonly contentType = this.#registry.contentType

  /** Every metric, the process's included, as Prometheus reads them. */
  exposition(): Promise<string> {
    return Registry.merge([processMetrics(), this.#registry]).metrics()
  }

  #databaseGauges(database: Database, logger: Logger): void {
    const registers = [this.#registry]
    const backlog = { undelivered: 0, oldestSeconds: 0, oldestKeptSeconds: 0 }
    // One query per scrape for the three gauges, bounded so a database outage cannot hold a scrape up; while
    // the database does not answer they keep their last value.
    let reading: Promise<void> | undefined
    const readBacklog = () => {
      reading ??= Promise.race([
        outboxBacklog(database).then((read) => Object.assign(backlog, read)),
        new Promise((_resolve, reject) => setTimeout(() => reject(new Error('no answer within 1 s')), 1000).unref()),
      ])
        .then(() => {})
        .catch((error: unknown) => logger.warn({ err: error }, 'could not read the outbox backlog for metrics'))
        .finally(() => {
          reading = undefined
        })
      return reading
    }
    const fromBacklog = (name: string, help: string, key: keyof typeof backlog) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          await readBacklog()
          this.set(backlog[key])
        },
      })
    fromBacklog(
      'allocation_outbox_undelivered',
      'Events committed but not yet delivered to every handler',
      'undelivered',
    )
    fromBacklog(
      'allocation_outbox_oldest_undelivered_seconds',
      'Age of the oldest undelivered event; 0 when all are delivered',
      'oldestSeconds',
    )
    fromBacklog(
      'allocation_outbox_oldest_event_seconds',
      'Age of the oldest event the outbox keeps; delivered events past EVENTS_RETENTION_DAYS are removed',
      'oldestKeptSeconds',
    )
    const pool = (
      name: string,
      help: string,
      read: (stats: NonNullable<ReturnType<Database['poolStats']>>) => number,
    ) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const stats = database.poolStats()
          if (stats) this.set(read(stats))
        },
      })
    if (database.poolStats() === null) return
    pool('allocation_db_pool_connections', 'Connections open to PostgreSQL', (s) => s.total)
    pool('allocation_db_pool_idle_connections', 'Open connections not in use', (s) => s.idle)
    pool('allocation_db_pool_waiting_requests', 'Requests waiting for a free connection', (s) => s.waiting)
    pool('allocation_db_pool_max_connections', 'The most connections the pool opens', (s) => s.max)
  }
}
