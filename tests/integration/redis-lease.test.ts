import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createLogger } from '../../src/adapters/logger.ts'
import { createRedisClient } from '../../src/adapters/redis-connection.ts'
import { holdLease, type Lease } from '../../src/adapters/redis-lease.ts'
import { redisAvailable, redisUrl, testClient } from '../support/redis.ts'
import { startTcpProxy } from '../support/tcp-proxy.ts'

const TTL_MS = 1000

/** A contender for a lease, with what it was told. */
type Contender = { lease: Lease; stop(): Promise<void>; taken: number; lost: number }

describe('holdLease', () => {
  let available = false
  let redis: Redis
  const contenders = new Set<Contender>()

  beforeAll(async () => {
    available = await redisAvailable()
    if (available) redis = testClient()
  })
  afterAll(async () => {
    if (!available) return
    await Promise.all([...contenders].map((contender) => contender.stop()))
    redis.disconnect()
  })

  function contend(key: string, options: { url?: string; onLost?: () => void } = {}): Contender {
    const client = createRedisClient(options.url ?? redisUrl)
    const stopping = new AbortController()
    const contender: Contender = {
      taken: 0,
      lost: 0,
      lease: holdLease({
        redis: client,
        key,
        owner: 'test',
        ttlMs: TTL_MS,
        logger: createLogger('silent'),
        signal: stopping.signal,
        onTaken: async () => void contender.taken++,
        onLost: () => {
          contender.lost++
          options.onLost?.()
        },
      }),
      async stop() {
        stopping.abort()
        await contender.lease.release()
        client.disconnect()
        contenders.delete(contender)
      },
    }
    contenders.add(contender)
    return contender
  }

  const holders = (of: readonly Contender[]) => of.filter((c) => c.lease.held())

  it('is held by one contender at a time, and taken by another once released', async (ctx) => {
    if (!available) return ctx.skip()
    const key = `test-${randomUUID()}:lease`
    const both = [contend(key), contend(key)]
    await Promise.all(both.map((c) => c.lease.settled))
    const [holder] = holders(both)
    expect(holders(both)).toHaveLength(1)
    expect(await redis.get(key)).toMatch(/^test:/)

    await holder?.stop()

    const other = both.find((c) => c !== holder) as Contender
    await vi.waitFor(() => expect(other.lease.held()).toBe(true), { timeout: TTL_MS / 2 })
    expect(other.taken).toBe(1)
    await other.stop()
    expect(await redis.exists(key)).toBe(0)
  })

  it('keeps the lease well past its ttl by renewing it', async (ctx) => {
    if (!available) return ctx.skip()
    const key = `test-${randomUUID()}:lease`
    const holder = contend(key)
    await holder.lease.settled
    const other = contend(key)

    await sleep(3 * TTL_MS)

    expect([holder.lease.held(), other.lease.held()]).toEqual([true, false])
    expect([holder.taken, holder.lost, other.taken]).toEqual([1, 0, 0])
  })

  it('is given up before it expires in Redis when renewals go unanswered, then taken by another', async (ctx) => {
    if (!available) return ctx.skip()
    const key = `test-${randomUUID()}:lease`
    const { hostname, port } = new URL(redisUrl)
    const proxy = await startTcpProxy(hostname, Number(port || 6379))
    try {
      const ttlLeft: Promise<number>[] = []
      const cutOff = contend(key, {
        url: `redis://127.0.0.1:${proxy.port}`,
        onLost: () => ttlLeft.push(redis.pttl(key)),
      })
      await cutOff.lease.settled
      const other = contend(key)
      await other.lease.settled

      proxy.setMode('hang')

      await vi.waitFor(() => expect(other.lease.held()).toBe(true), { timeout: 3 * TTL_MS })
      expect(cutOff.lease.held()).toBe(false)
      expect(cutOff.lost).toBe(1)
      // Still the cut-off one's in Redis when it stopped counting on it: nobody else could have it yet.
      const [left, ...more] = await Promise.all(ttlLeft)
      expect(more).toEqual([])
      expect(left).toBeGreaterThan(0)
    } finally {
      await proxy.close()
    }
  })

  it('is not counted on by a holder that was paused past its ttl, before any timer of its runs', async (ctx) => {
    if (!available) return ctx.skip()
    const holder = contend(`test-${randomUUID()}:lease`)
    await holder.lease.settled
    expect(holder.lease.held()).toBe(true)

    // Blocks this thread as a pause (a long GC, SIGSTOP) would: no renewal, no timer.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, TTL_MS)

    expect(holder.lease.held()).toBe(false)
  })

  it('is a key of the logical database in the URL, so deployments on other databases hold their own', async (ctx) => {
    if (!available) return ctx.skip()
    const key = `test-${randomUUID()}:lease`
    const inDatabase = (n: number) => Object.assign(new URL(redisUrl), { pathname: `/${n}` }).toString()
    const both = [contend(key, { url: inDatabase(1) }), contend(key, { url: inDatabase(2) })]
    await Promise.all(both.map((c) => c.lease.settled))

    expect(holders(both)).toHaveLength(2)
  })
})
