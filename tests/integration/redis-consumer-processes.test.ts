import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Database } from '../../src/adapters/postgres/database.ts'
import type { Service } from '../../src/bootstrap.ts'
import { defaultCommandKeys, type RedisConsumer, startRedisConsumer } from '../../src/entrypoints/redis-consumer.ts'
import type { MessageBus } from '../../src/service-layer/message-bus.ts'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { redisAvailable, redisUrl, testClient, uniqueKeys } from '../support/redis.ts'
import { startTcpProxy } from '../support/tcp-proxy.ts'
import { openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

type Keys = typeof defaultCommandKeys
/** One process's consumer, and the channel's changes it applied (`<ref> <qty>`). */
type Process = Readonly<{ consumer: RedisConsumer; applied: string[] }>

/** Short, so that a lease left to run out expires within the test. */
const LEASE_MS = 1000

describe('Redis consumers of several processes on one Redis and one database', () => {
  let available = false
  let test: TestDatabase | null = null
  let service: Service
  let redis: Redis
  const running = new Set<RedisConsumer>()
  const used = new Set<Keys>()

  beforeAll(async () => {
    available = await redisAvailable()
    if (!available) return
    test = await openTestDatabase('pglite')
    service = serviceOn(test?.database as Database)
    redis = testClient()
  })
  afterAll(async () => {
    if (!available) return
    await Promise.all([...running].map((consumer) => consumer.stop()))
    for (const keys of used) await redis.del(keys.commands, keys.deadLetter)
    redis.disconnect()
    await service.close()
    await test?.drop()
  })

  /** A process of the deployment: its consumer, over a bus that records what the channel made it apply. */
  function startProcess(keys: Keys, options: { redisUrl?: string; leaseMs?: number } = {}): Process {
    const applied: string[] = []
    const bus: MessageBus = {
      ...service.bus,
      async handle(command) {
        const result = await service.bus.handle(command)
        if (command.type === 'ChangeBatchQuantity') applied.push(`${command.ref} ${command.qty}`)
        return result
      },
    }
    const consumer = startRedisConsumer({
      bus,
      logger: service.logger,
      redisUrl: options.redisUrl ?? redisUrl,
      keys,
      consumerName: `test-${randomUUID()}`,
      blockMs: 100,
      leaseMs: options.leaseMs ?? LEASE_MS,
    })
    running.add(consumer)
    used.add(keys)
    return { consumer, applied }
  }

  async function stop({ consumer }: Process): Promise<void> {
    await consumer.stop()
    running.delete(consumer)
  }

  async function newBatch(): Promise<string> {
    const ref = randomBatchref()
    await service.bus.handle({ type: 'CreateBatch', ref, sku: randomSku(), qty: 100, eta: null })
    return ref
  }

  const publish = (keys: Keys, ref: string, qty: number) =>
    redis.publish(keys.changeBatchQuantity, JSON.stringify({ batchref: ref, qty }))

  async function subscribers(keys: Keys): Promise<number> {
    const [, count] = (await redis.pubsub('NUMSUB', keys.changeBatchQuantity)) as [string, number]
    return count
  }

  async function lettersOf(keys: Keys, message: string): Promise<Record<string, string>[]> {
    const letters = (await redis.xrange(keys.deadLetter, '-', '+')).map(([, fields]) => fieldsOf(fields))
    return letters.filter((letter) => letter.message === message)
  }

  /** Publishes a change of `ref` every 50 ms, a new qty each time, until one is applied; answers which. */
  async function publishUntilApplied(keys: Keys, ref: string, by: readonly Process[], timeoutMs: number) {
    const deadline = Date.now() + timeoutMs
    for (let qty = 50; Date.now() < deadline; qty++) {
      await publish(keys, ref, qty)
      await sleep(50)
      const applier = by.find((p) => p.applied.some((change) => change.startsWith(`${ref} `)))
      if (applier) return applier
    }
    throw new Error(`No change of ${ref} was applied within ${timeoutMs} ms`)
  }

  it('applies a change_batch_quantity message once, and dead-letters an invalid one once, with two processes', async (ctx) => {
    if (!available) return ctx.skip()
    const keys = uniqueKeys(defaultCommandKeys)
    const processes = [startProcess(keys), startProcess(keys)]
    await Promise.all(processes.map((p) => p.consumer.ready))
    const ref = await newBatch()
    const invalid = JSON.stringify({ batchref: randomBatchref('unknown'), qty: 3 })

    await publish(keys, ref, 7)
    await redis.publish(keys.changeBatchQuantity, invalid)

    await vi.waitFor(async () => expect(await lettersOf(keys, invalid)).not.toEqual([]))
    // Time for a second process to apply and set aside its own copy, if it were subscribed.
    await sleep(500)
    expect(processes.flatMap((p) => p.applied)).toEqual([`${ref} 7`])
    expect(await lettersOf(keys, invalid)).toHaveLength(1)
    expect((await service.views.batch(ref))?.purchased).toBe(7)
    expect(await subscribers(keys)).toBe(1)
  })

  it('hands the channel to another process when the one holding it stops, without waiting for its lease to expire', async (ctx) => {
    if (!available) return ctx.skip()
    const keys = uniqueKeys(defaultCommandKeys)
    // A lease far longer than the hand-over may take: only its release lets the other process in so soon.
    const processes = [startProcess(keys, { leaseMs: 10_000 }), startProcess(keys, { leaseMs: 10_000 })]
    await Promise.all(processes.map((p) => p.consumer.ready))
    const ref = await newBatch()
    const holder = await publishUntilApplied(keys, ref, processes, 2000)
    const other = processes.find((p) => p !== holder) as Process
    await sleep(300)
    expect(other.applied).toEqual([])

    const stopped = Date.now()
    await stop(holder)
    const next = await newBatch()
    expect(await publishUntilApplied(keys, next, processes, 5000)).toBe(other)

    expect(Date.now() - stopped).toBeLessThan(5000)
    expect(holder.applied.filter((change) => change.startsWith(`${next} `))).toEqual([])
    expect(await subscribers(keys)).toBe(1)
  })

  it('lets another process take the channel once the lease of a holder cut off from Redis expires, never both at once', async (ctx) => {
    if (!available) return ctx.skip()
    const keys = uniqueKeys(defaultCommandKeys)
    const { hostname, port } = new URL(redisUrl)
    const proxy = await startTcpProxy(hostname, Number(port || 6379))
    try {
      const holder = startProcess(keys, { redisUrl: `redis://127.0.0.1:${proxy.port}` })
      await holder.consumer.ready
      const other = startProcess(keys)
      await other.consumer.ready
      const ref = await newBatch()
      expect(await publishUntilApplied(keys, ref, [holder, other], 2000)).toBe(holder)
      await sleep(300)
      expect(other.applied).toEqual([])

      // Its renewals go unanswered from now on, and its lease is never released: as a process that died.
      proxy.setMode('hang')
      const cut = Date.now()
      const next = await newBatch()
      expect(await publishUntilApplied(keys, next, [holder, other], 5 * LEASE_MS)).toBe(other)

      const takenAfter = Date.now() - cut
      expect(takenAfter).toBeGreaterThan(LEASE_MS / 2)
      expect(holder.applied.filter((change) => change.startsWith(`${next} `))).toEqual([])
      const appliedTwice = other.applied.filter((change, i) => other.applied.indexOf(change) !== i)
      expect(appliedTwice).toEqual([])
      await sleep(2 * LEASE_MS)
      expect(await subscribers(keys)).toBe(1)
    } finally {
      await proxy.close()
    }
  })
})

function fieldsOf(fields: string[]): Record<string, string> {
  return Object.fromEntries(fields.flatMap((value, i) => (i % 2 === 0 ? [[value, fields[i + 1] ?? '']] : [])))
}
