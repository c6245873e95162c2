import type { Redis } from 'ioredis'
import { FailFast } from '../service-layer/fail-fast.ts'
import type { EventPublisher, Logger, StoredEvent } from '../service-layer/ports.ts'
import { execOrThrow } from './redis-connection.ts'

/** Where events go; the defaults are the contract other services rely on. */
export type EventKeys = Readonly<{
  /** Every event: fields `type`, `id`, `payload` (JSON of the event). */
  events: string
  /** The book's channel: `{"orderid","sku","qty","batchref"}` for each `Allocated`. */
  lineAllocated: string
}>

export const defaultEventKeys: EventKeys = { events: 'allocation:events', lineAllocated: 'line_allocated' }

export type RedisEventPublisherOptions = Readonly<{
  keys?: Partial<EventKeys>
  /** The stream is trimmed to about this many entries (approximately, which costs Redis nothing). */
  maxLength?: number
  /** Told when publishing starts failing, while it goes on, and when it works again. */
  logger: Logger
  /** Called when publishing works again after failing. */
  onRecovered?: () => void
}>

/**
 * Publishes to the events stream, and an `Allocated` also to the book's channel. Both go in one MULTI, so
 * a failed delivery, retried from the outbox, never left the channel message sent without the stream entry.
 */
export class RedisEventPublisher implements EventPublisher {
  readonly #redis: Redis
  readonly #keys: EventKeys
  readonly #maxLength: number
  /** Redis that just failed is not waited for again by the next event for a few seconds. */
  readonly #failFast: FailFast

  /** `redis` should connect lazily and time out its commands (see `createRedisClient`). */
  constructor(redis: Redis, options: RedisEventPublisherOptions) {
    this.#redis = redis
    this.#keys = { ...defaultEventKeys, ...options.keys }
    this.#maxLength = options.maxLength ?? 1_000_000
    const { logger, onRecovered } = options
    this.#failFast = new FailFast('Publishing to Redis', 5000, { logger, onRecovered })
  }

  publish(stored: StoredEvent): Promise<void> {
    return this.#failFast.run(() => this.#publish(stored))
  }

  async #publish({ id, event }: StoredEvent): Promise<void> {
    const transaction = this.#redis
      .multi()
      .xadd(
        this.#keys.events,
        'MAXLEN',
        '~',
        this.#maxLength,
        '*',
        'type',
        event.type,
        'id',
        String(id),
        'payload',
        JSON.stringify(event),
      )
    if (event.type === 'Allocated') {
      const { orderid, sku, qty, batchref } = event
      transaction.publish(this.#keys.lineAllocated, JSON.stringify({ orderid, sku, qty, batchref }))
    }
    await execOrThrow(transaction)
  }
}
