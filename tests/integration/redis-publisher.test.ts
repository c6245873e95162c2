import { once } from 'node:events'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/adapters/logger.ts'
import { createRedisClient } from '../../src/adapters/redis-connection.ts'
import { defaultEventKeys, RedisEventPublisher } from '../../src/adapters/redis-publisher.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { redisAvailable, redisUrl, testClient, uniqueKeys } from '../support/redis.ts'
import { openTestDatabase, type TestDatabase } from './support.ts'

describe('RedisEventPublisher', () => {
  const keys = uniqueKeys(defaultEventKeys)
  let available = false
  let test: TestDatabase | null = null
  let service: Service
  let publisherClient: Redis
  let redis: Redis
  let subscriber: Redis

  beforeAll(async () => {
    available = await redisAvailable()
    if (!available) return
    test = await openTestDatabase('pglite')
    publisherClient = createRedisClient(redisUrl, { commandTimeoutMs: 2000 })
    const publisher = new RedisEventPublisher(publisherClient, { keys, logger: createLogger('silent') })
    service = bootstrap(loadConfig({ LOG_LEVEL: 'silent' }), { database: test?.database, publisher })
    redis = testClient()
    subscriber = testClient()
    await subscriber.subscribe(keys.lineAllocated)
  })
  afterAll(async () => {
    if (!available) return
    await redis.del(keys.events)
    for (const client of [publisherClient, redis, subscriber]) client.disconnect()
    await test?.drop()
  })

  it('adds every event to the stream with its type, outbox id and JSON payload', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, batchref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref: batchref, sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 3 })

    const entries = (await redis.xrange(keys.events, '-', '+')).map(([, fields]) => fieldsOf(fields))
    const ofThisSku = entries.filter((entry) => (JSON.parse(entry.payload ?? '{}') as { sku?: string }).sku === sku)
    expect(ofThisSku.map(({ type, payload }) => [type, JSON.parse(payload ?? 'null')])).toEqual([
      ['BatchCreated', { type: 'BatchCreated', ref: batchref, sku, qty: 10, eta: null }],
      ['Allocated', { type: 'Allocated', orderid, sku, qty: 3, batchref }],
    ])
    const ids = ofThisSku.map((entry) => Number(entry.id))
    expect(ids.every(Number.isSafeInteger)).toBe(true)
    expect(ids[1]).toBeGreaterThan(ids[0] ?? Infinity)
    const stored = await service.views.events(0, 1000)
    expect(stored.filter((s) => s.event.sku === sku).map((s) => s.id)).toEqual(ids)
  })

  it("publishes each allocation on the book's line_allocated channel with the book's payload", async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, batchref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref: batchref, sku, qty: 10, eta: null })
    const message = once(subscriber, 'message')
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 3 })

    const [channel, text] = (await message) as [string, string]
    expect(channel).toBe(keys.lineAllocated)
    expect(JSON.parse(text)).toEqual({ orderid, sku, qty: 3, batchref })
  })

  it('fails the delivery, for the outbox to retry, when Redis does not answer, and says so once in the log', async (ctx) => {
    if (!available) return ctx.skip()
    const unreachable = createRedisClient('redis://127.0.0.1:1', { commandTimeoutMs: 500 })
    const lines: Array<[string, string | undefined]> = []
    const line = (level: string) => (_obj: object, msg?: string) => void lines.push([level, msg])
    const logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') }
    const publisher = new RedisEventPublisher(unreachable, { keys, logger })
    const event = { type: 'OutOfStock', orderid: 'o', sku: 's', qty: 1, backordered: false } as const
    const started = Date.now()
    await expect(publisher.publish({ id: 1, event })).rejects.toThrow(/^Publishing to Redis failed: /)
    expect(Date.now() - started).toBeLessThan(3000)
    await expect(publisher.publish({ id: 2, event })).rejects.toThrow('failed a moment ago')
    expect(lines).toEqual([['error', 'Publishing to Redis failed']])
    unreachable.disconnect()
  })
})

function fieldsOf(fields: string[]): Partial<Record<'type' | 'id' | 'payload', string>> {
  return Object.fromEntries(fields.flatMap((value, i) => (i % 2 === 0 ? [[value, fields[i + 1]]] : [])))
}
