import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { OutageLog } from '../service-layer/outage-log.ts'
import type { Logger } from '../service-layer/ports.ts'
import { abandonOnAbort } from './redis-connection.ts'

/** 1 when ARGV[1] holds KEYS[1] for ARGV[2] ms from now: taken if nobody held it, renewed if it did. */
const TAKE_OR_RENEW = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

/** How long a stopping holder tries to release the lease; after that it expires on its own. */
const RELEASE_WITHIN_MS = 1000

export type LeaseOptions = Readonly<{
  /** A connection for short commands; the lease lives in its logical database. */
  redis: Redis
  key: string
  /** Who holds it, as `GET <key>` shows; a random suffix makes it this holder's alone. */
  owner: string
  /** How long the lease lasts unless renewed; it is renewed, or asked for, every fifth of that. */
  ttlMs: number
  logger: Logger
  /** Aborted to stop renewing; the lease is then held until `release` or its expiry. */
  signal: AbortSignal
  /** Starts what only the holder does. Failing gives the lease up (it is asked for again later). */
  onTaken(): Promise<void>
  /** Stops it at once: the lease can no longer be counted on (not renewed in time, or another has it). */
  onLost(): void
}>

export type Lease = Readonly<{
  /**
   * True while the lease is surely this holder's: taken or renewed less than 90% of its ttl ago by this
   * process's clock, measured from when the command was sent, before Redis started counting. Checked as
   * a message is applied, it turns away the messages a paused process finds waiting when it resumes.
   */
  held(): boolean
  /** Resolves once an attempt was answered (after `onTaken` when it took the lease), or on abort. */
  settled: Promise<void>
  /** Gives the lease up, once the attempts have stopped, so that another can take it at once; bounded. */
  release(): Promise<void>
}>

/**
 * Holds the lease `key` against every other process with the same key (`SET NX PX`, renewed by compare
 * and set), or asks for it every fifth of its ttl until it gets it, until `signal` aborts.
 */
export function holdLease(options: LeaseOptions): Lease {
  const { redis, key, ttlMs, logger, signal } = options
  const owner = `${options.owner}:${randomUUID()}`
  // Redis counts the ttl from when it runs the command, after it was sent: by this clock the lease lasts
  // at least the ttl from the sending. The margin allows for clocks that do not run at quite one rate.
  const validMs = ttlMs * 0.9
  const until = abandonOnAbort(signal)
  const settled = Promise.withResolvers<void>()
  let holding = false
  let taken = false
  let validUntil = Number.NEGATIVE_INFINITY
  let expiry: NodeJS.Timeout | undefined

  const held = () => holding && performance.now() < validUntil

  function lose(why: string): void {
    clearTimeout(expiry)
    if (!holding) return
    holding = false
    options.onLost()
    if (!signal.aborted) logger.warn({ lease: key }, `gave up the Redis lease ${key}: ${why}`)
  }

  async function attempt(): Promise<void> {
    const sentAt = performance.now()
    const answer = await until(redis.eval(TAKE_OR_RENEW, 1, key, owner, ttlMs))
    if (answer !== 1) return lose('another process holds it')
    // Answered too late to be counted on: the next attempt renews it.
    if (performance.now() >= sentAt + validMs) return
    taken = true
    validUntil = sentAt + validMs
    clearTimeout(expiry)
    expiry = setTimeout(() => lose(`could not renew it within ${validMs} ms`), validUntil - performance.now()).unref()
    if (holding) return
    holding = true
    try {
      await options.onTaken()
    } catch (error) {
      lose('what the holder does could not start')
      throw error
    }
  }

  async function run(): Promise<void> {
    const attempts = new OutageLog(logger, `taking or renewing the Redis lease ${key}`)
    while (!signal.aborted) {
      try {
        await attempt()
        attempts.succeeded()
        settled.resolve()
      } catch (error) {
        if (!signal.aborted) attempts.failed(error)
      }
      await sleep(ttlMs / 5, undefined, { signal }).catch(() => {})
    }
    // Held by the clock still: the holder finishes what it has in hand, then releases.
    clearTimeout(expiry)
    settled.resolve()
  }

  const running = run()
  return {
    held,
    settled: settled.promise,
    async release() {
      await running
      if (!taken) return
      holding = false
      const releasing = redis
        .eval(RELEASE, 1, key, owner)
        .catch((error: unknown) => logger.debug({ err: error, lease: key }, 'could not release the Redis lease'))
      await Promise.race([releasing, sleep(RELEASE_WITHIN_MS, undefined, { ref: false })])
    },
  }
}
