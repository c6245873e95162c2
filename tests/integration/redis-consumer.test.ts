import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/adapters/logger.ts'
import { createRedisClient } from '../../src/adapters/redis-connection.ts'
import { defaultEventKeys, RedisEventPublisher } from '../../src/adapters/redis-publisher.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import type { Command } from '../../src/domain/commands.ts'
import { defaultCommandKeys, type RedisConsumer, startRedisConsumer } from '../../src/entrypoints/redis-consumer.ts'
import type { MessageBus } from '../../src/service-layer/message-bus.ts'
import { Unavailable } from '../../src/service-layer/ports.ts'
import { parseMetrics } from '../support/metrics-text.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { redisAvailable, redisUrl, testClient, uniqueKeys } from '../support/redis.ts'
import { startTcpProxy } from '../support/tcp-proxy.ts'
import { openTestDatabase, type TestDatabase } from './support.ts'

describe('Redis consumer', () => {
  const keys = uniqueKeys(defaultCommandKeys)
  const eventKeys = uniqueKeys(defaultEventKeys)
  const consumerName = `test-${randomUUID()}`
  let available = false
  let test: TestDatabase | null = null
  let service: Service
  let consumer: RedisConsumer
  let publisherClient: Redis
  let redis: Redis
  let listener: Redis
  const lineAllocated: unknown[] = []

  beforeAll(async () => {
    available = await redisAvailable()
    if (!available) return
    test = await openTestDatabase('pglite')
    publisherClient = createRedisClient(redisUrl, { commandTimeoutMs: 2000 })
    const publisher = new RedisEventPublisher(publisherClient, { keys: eventKeys, logger: createLogger('silent') })
    service = bootstrap(loadConfig({ LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' }), {
      database: test?.database,
      publisher,
    })
    consumer = startRedisConsumer({
      bus: service.bus,
      logger: service.logger,
      redisUrl,
      keys,
      consumerName,
      metrics: service.metrics,
    })
    redis = testClient()
    listener = testClient()
    listener.on('message', (_channel, text: string) => lineAllocated.push(JSON.parse(text)))
    await Promise.all([consumer.ready, listener.subscribe(eventKeys.lineAllocated)])
  })
  afterAll(async () => {
    if (!available) return
    await consumer.stop()
    await redis.del(keys.commands, keys.deadLetter)
    for (const client of [publisherClient, redis, listener]) client.disconnect()
    await test?.drop()
  })

  /** Adds an entry to `stream` as another service would; a payload that is not a string is sent as JSON. */
  function send(type: string, payload: unknown, stream = keys.commands): Promise<string> {
    const text = typeof payload === 'string' ? payload : JSON.stringify(payload)
    return redis.xadd(stream, '*', 'type', type, 'payload', text) as Promise<string>
  }

  async function pendingCount(commands = keys.commands, group = keys.group): Promise<number> {
    const [count] = (await redis.xpending(commands, group)) as [number]
    return count
  }

  async function deadLetters(stream = keys.deadLetter): Promise<Record<string, string>[]> {
    return (await redis.xrange(stream, '-', '+')).map(([, fields]) => fieldsOf(fields))
  }

  it('reallocates when another service changes a batch quantity on change_batch_quantity (the book)', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, earlier, later, orderid] = [randomSku(), randomBatchref('1'), randomBatchref('2'), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref: earlier, sku, qty: 10, eta: '2026-01-01' })
    await service.bus.handle({ type: 'CreateBatch', ref: later, sku, qty: 10, eta: '2026-01-02' })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 10 })
    await eventually(() => expect(lineAllocated).toContainEqual({ orderid, sku, qty: 10, batchref: earlier }))

    await redis.publish(keys.changeBatchQuantity, JSON.stringify({ batchref: earlier, qty: 5 }))

    await eventually(() => expect(lineAllocated).toContainEqual({ orderid, sku, qty: 10, batchref: later }), 3000)
  })

  it('applies an entry of allocation:commands and acknowledges it once committed', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await send('CreateBatch', { ref, sku, qty: 10, eta: null })
    await send('Allocate', { orderid, sku, qty: 4 })

    await eventually(async () =>
      expect(await service.views.allocations(orderid)).toEqual([{ sku, batchref: ref, qty: 4 }]),
    )
    await eventually(async () => expect(await pendingCount()).toBe(0))
  })

  it('backorders, holds and cancels lines sent on allocation:commands, and dead-letters a hold with a backorder', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    const [waiting, held, both] = [randomOrderid('waiting'), randomOrderid('held'), randomOrderid('both')]
    await send('CreateBatch', { ref, sku, qty: 2, eta: null })
    await send('Allocate', { orderid: waiting, sku, qty: 5, backorder: true })
    await send('Allocate', { orderid: held, sku, qty: 2, holdSeconds: 600 })
    const refused = await send('Allocate', { orderid: both, sku, qty: 1, holdSeconds: 60, backorder: true })

    await eventually(async () => {
      expect((await service.views.order(waiting))[0]?.status).toBe('backordered')
      expect((await service.views.order(held))[0]?.status).toBe('held')
      expect((await deadLetters()).find(({ id }) => id === refused)?.reason).toMatch(/^HoldWithBackorder: /)
    })
    await send('Deallocate', { orderid: waiting, sku })
    await send('Deallocate', { orderid: held, sku })
    await eventually(async () => {
      expect(await service.views.order(waiting)).toEqual([])
      expect(await service.views.order(held)).toEqual([])
    })
    expect(await service.views.order(both)).toEqual([])
  })

  it('allocates once an entry delivered again after its consumer died between commit and acknowledgement', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const id = `${Date.now() + 60_000}-0`
    const command: Command = { type: 'Allocate', orderid, sku, qty: 4 }
    // What the dead consumer did before it could acknowledge: the entry's id is recorded with the allocation.
    expect(await service.bus.handleOnce(`${keys.commands}:${id}`, command)).toMatchObject({ batchref: ref })

    await redis.xadd(keys.commands, id, 'type', 'Allocate', 'payload', JSON.stringify({ orderid, sku, qty: 4 }))

    await eventually(async () => expect(await pendingCount()).toBe(0))
    expect((await service.views.batch(ref))?.allocated).toBe(4)
    const events = await service.views.events(0, 10_000)
    expect(events.filter(({ event }) => event.type === 'Allocated' && event.orderid === orderid)).toHaveLength(1)
  })

  it('moves malformed entries to the dead-letter stream with a reason and goes on', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const malformed = [
      await send('Allocate', 'not json'),
      await send('Reticulate', { orderid, sku, qty: 1 }),
      await send('Allocate', { orderid, sku }),
      await send('Allocate', { orderid, sku, qty: '5' }),
      await send('CreateBatch', { ref: randomBatchref(), sku, qty: 1, eta: '2026-02-30' }),
      (await redis.xadd(keys.commands, '*', 'payload', JSON.stringify({ orderid, sku, qty: 1 }))) as string,
    ]
    await send('Allocate', { orderid, sku, qty: 2 })

    await eventually(async () =>
      expect(await service.views.allocations(orderid)).toEqual([{ sku, batchref: ref, qty: 2 }]),
    )
    await eventually(async () => expect(await pendingCount()).toBe(0))
    const letters = (await deadLetters()).filter(({ id }) => malformed.includes(id ?? ''))
    expect(letters.map(({ id, source, reason }) => ({ id, source, reason }))).toEqual([
      { id: malformed[0], source: keys.commands, reason: expect.stringMatching(/not valid JSON/) },
      { id: malformed[1], source: keys.commands, reason: expect.stringMatching(/Unknown command type "Reticulate"/) },
      { id: malformed[2], source: keys.commands, reason: expect.stringMatching(/required properties qty/) },
      { id: malformed[3], source: keys.commands, reason: expect.stringMatching(/"qty" must be integer/) },
      {
        id: malformed[4],
        source: keys.commands,
        reason: expect.stringMatching(/"eta" must be a real calendar date written YYYY-MM-DD/),
      },
      { id: malformed[5], source: keys.commands, reason: expect.stringMatching(/no "type" field/) },
    ])
    expect(JSON.parse(letters[0]?.message ?? '')).toEqual({ type: 'Allocate', payload: 'not json' })
    const counted = parseMetrics(await service.metrics.exposition()).get('allocation_dead_letters_total')
    expect(counted).toBeGreaterThanOrEqual(malformed.length)
  })

  it('moves commands the domain refuses to the dead-letter stream without retrying them', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, orderid] = [randomSku(), randomOrderid()]
    const refused = [
      await send('Allocate', { orderid, sku, qty: 1 }),
      await send('ChangeBatchQuantity', { ref: randomBatchref(), qty: 1 }),
    ]

    await eventually(async () =>
      expect((await deadLetters()).filter(({ id }) => refused.includes(id ?? ''))).toHaveLength(2),
    )
    const reasons = (await deadLetters()).filter(({ id }) => refused.includes(id ?? '')).map(({ reason }) => reason)
    expect(reasons).toEqual([
      `InvalidSku: Invalid sku ${sku}`,
      expect.stringMatching(/^UnknownBatch: There is no batch/),
    ])
    expect(await pendingCount()).toBe(0)
  })

  it('dead-letters a malformed or refused change_batch_quantity message with its raw text', async (ctx) => {
    if (!available) return ctx.skip()
    const unknown = JSON.stringify({ batchref: randomBatchref(), qty: 5 })
    const texts = [`not json ${randomUUID()}`, JSON.stringify({ batchref: randomBatchref(), qty: '5' }), unknown]
    for (const text of texts) await redis.publish(keys.changeBatchQuantity, text)

    await eventually(async () => {
      const letters = (await deadLetters()).filter(({ message }) => texts.includes(message ?? ''))
      expect(letters.map(({ source, reason, message }) => ({ source, reason, message }))).toEqual([
        { source: keys.changeBatchQuantity, reason: expect.stringMatching(/not valid JSON/), message: texts[0] },
        { source: keys.changeBatchQuantity, reason: expect.stringMatching(/"qty" must be integer/), message: texts[1] },
        { source: keys.changeBatchQuantity, reason: expect.stringMatching(/^UnknownBatch/), message: unknown },
      ])
    })
  })

  it('survives its connections being killed: later commands and messages are still applied', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const killed = await killClientsNamed(`allocation-consumer:${consumerName}`)
    expect(killed).toBe(3)

    await send('Allocate', { orderid, sku, qty: 3 })
    await eventually(async () =>
      expect(await service.views.allocations(orderid)).toEqual([{ sku, batchref: ref, qty: 3 }]),
    )
    await eventually(async () => {
      const [, subscribers] = (await redis.pubsub('NUMSUB', keys.changeBatchQuantity)) as [string, number]
      expect(subscribers).toBe(1)
    })
    await redis.publish(keys.changeBatchQuantity, JSON.stringify({ batchref: ref, qty: 7 }))
    await eventually(async () => expect((await service.views.batch(ref))?.purchased).toBe(7))
  })

  it('creates the stream and its group again when Redis lost them, and a replayed entry still applies once', async (ctx) => {
    if (!available) return ctx.skip()
    const [sku, ref, first, second] = [randomSku(), randomBatchref(), randomOrderid(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const id = await send('Allocate', { orderid: first, sku, qty: 1 })
    await eventually(async () => expect(await service.views.allocations(first)).toHaveLength(1))
    await eventually(async () => expect(await pendingCount()).toBe(0))

    await redis.del(keys.commands)
    await redis.xadd(keys.commands, id, 'type', 'Allocate', 'payload', JSON.stringify({ orderid: first, sku, qty: 1 }))
    await send('Allocate', { orderid: second, sku, qty: 2 })

    await eventually(async () => expect(await service.views.allocations(second)).toHaveLength(1), 10_000)
    await eventually(async () => expect(await pendingCount()).toBe(0))
    expect((await service.views.batch(ref))?.allocated).toBe(3)
  })

  describe('when handling fails for a passing reason (the database is down)', () => {
    /** A bus whose `handleOnce` fails for the order's first `failures` deliveries, with `error`. */
    function failingBus(
      orderid: string,
      failures: number,
      error = () => new Error('connect ECONNREFUSED: the database is down'),
    ): MessageBus {
      let failed = 0
      return {
        ...service.bus,
        handleOnce(messageId, command) {
          if ('orderid' in command && command.orderid === orderid && failed < failures) {
            failed++
            return Promise.reject(error())
          }
          return service.bus.handleOnce(messageId, command)
        },
      }
    }

    async function withConsumer(bus: MessageBus, work: (own: typeof keys) => Promise<void>): Promise<void> {
      const own = uniqueKeys(defaultCommandKeys)
      const flaky = startRedisConsumer({
        bus,
        logger: service.logger,
        redisUrl,
        keys: own,
        consumerName: `test-${randomUUID()}`,
        blockMs: 100,
        claimIdleMs: 200,
        maxDeliveries: 3,
      })
      try {
        await flaky.ready
        await work(own)
      } finally {
        await flaky.stop()
        await redis.del(own.commands, own.deadLetter)
      }
    }

    it('leaves the entry pending and applies it on a later delivery', async (ctx) => {
      if (!available) return ctx.skip()
      const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
      await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
      await withConsumer(failingBus(orderid, 2), async (own) => {
        await send('Allocate', { orderid, sku, qty: 1 }, own.commands)
        await eventually(async () => expect(await pendingCount(own.commands, own.group)).toBe(1))
        await eventually(async () => expect(await service.views.allocations(orderid)).toHaveLength(1), 5000)
        await eventually(async () => expect(await pendingCount(own.commands, own.group)).toBe(0))
        expect(await deadLetters(own.deadLetter)).toEqual([])
      })
    })

    it('waits out an outage of the database however many deliveries it takes, and applies the entry once', async (ctx) => {
      if (!available) return ctx.skip()
      const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
      await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
      // Twice the deliveries after which another failure would be dead-lettered.
      const outage = failingBus(orderid, 6, () => new Unavailable('connect ECONNREFUSED 127.0.0.1:5432'))
      await withConsumer(outage, async (own) => {
        await send('Allocate', { orderid, sku, qty: 1 }, own.commands)
        await eventually(async () => expect(await service.views.allocations(orderid)).toHaveLength(1), 15_000)
        await eventually(async () => expect(await pendingCount(own.commands, own.group)).toBe(0))
        expect(await deadLetters(own.deadLetter)).toEqual([])
      })
    })

    it('moves the entry to the dead-letter stream after the last delivery', async (ctx) => {
      if (!available) return ctx.skip()
      const [sku, orderid] = [randomSku(), randomOrderid()]
      await withConsumer(failingBus(orderid, Infinity), async (own) => {
        const id = await send('Allocate', { orderid, sku, qty: 1 }, own.commands)
        await eventually(async () => expect(await deadLetters(own.deadLetter)).toHaveLength(1), 5000)
        const [letter] = await deadLetters(own.deadLetter)
        expect(letter).toMatchObject({ id, source: own.commands })
        expect(letter?.reason).toMatch(/Not handled in 3 deliveries.*the database is down/)
        expect(await pendingCount(own.commands, own.group)).toBe(0)
      })
    })
  })

  it('stops promptly while waiting for entries, and leaves the group', async (ctx) => {
    if (!available) return ctx.skip()
    const own = uniqueKeys(defaultCommandKeys)
    const name = `test-${randomUUID()}`
    const idle = startRedisConsumer({
      bus: service.bus,
      logger: service.logger,
      redisUrl,
      keys: own,
      consumerName: name,
      blockMs: 10_000,
    })
    await idle.ready
    // Redis knows a consumer once it was handed an entry.
    await send('Reticulate', {}, own.commands)
    await eventually(async () => expect(await pendingCount(own.commands, own.group)).toBe(0))
    await eventually(async () => expect(await deadLetters(own.deadLetter)).toHaveLength(1))
    expect(await consumersOf(own)).toEqual([name])

    const started = Date.now()
    await idle.stop()

    expect(Date.now() - started).toBeLessThan(1000)
    expect(await consumersOf(own)).toEqual([])
    await redis.del(own.commands, own.deadLetter)
  })

  it('keeps trying while Redis does not answer, and still stops promptly', async (ctx) => {
    if (!available) return ctx.skip()
    const unreachable = startRedisConsumer({
      bus: service.bus,
      logger: service.logger,
      redisUrl: 'redis://127.0.0.1:1',
    })
    await new Promise((resolve) => setTimeout(resolve, 500))
    const started = Date.now()
    await unreachable.stop()
    await unreachable.ready
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('stops while Redis accepts and never answers, without waiting to leave its group or release the channel', async (ctx) => {
    if (!available) return ctx.skip()
    const { hostname, port } = new URL(redisUrl)
    const proxy = await startTcpProxy(hostname, Number(port || 6379))
    const own = uniqueKeys(defaultCommandKeys)
    const consumer = startRedisConsumer({
      bus: service.bus,
      logger: service.logger,
      redisUrl: `redis://127.0.0.1:${proxy.port}`,
      keys: own,
      consumerName: `test-${randomUUID()}`,
      blockMs: 100,
    })
    try {
      await consumer.ready
      proxy.setMode('hang')
      await new Promise((resolve) => setTimeout(resolve, 300))
      // A stop that waited for the hung server would outlast the socket timeout (blockMs + 10 s).
      const started = Date.now()
      const outcome = await Promise.race([
        consumer.stop().then(() => 'stopped'),
        new Promise((resolve) => setTimeout(resolve, 5000, 'still stopping')),
      ])
      expect(outcome).toBe('stopped')
      // Leaving the group and releasing the channel's lease are bounded to 1 s each, and go side by side.
      expect(Date.now() - started).toBeLessThan(2000)
    } finally {
      await proxy.close()
      await redis.del(own.commands, own.deadLetter)
    }
  })

  async function consumersOf(own: typeof keys): Promise<string[]> {
    const consumers = (await redis.xinfo('CONSUMERS', own.commands, own.group)) as string[][]
    return consumers.map((fields) => fieldsOf(fields).name ?? '')
  }

  async function killClientsNamed(prefix: string): Promise<number> {
    const list = (await redis.client('LIST')) as string
    const ids = list
      .split('\n')
      .filter((line) => line.includes(` name=${prefix}`))
      .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1])
    for (const id of ids) if (id) await redis.client('KILL', 'ID', id)
    return ids.length
  }
})

/** Retries `assertion` until it passes or `timeoutMs` is over; then fails with its last error. */
async function eventually(assertion: () => unknown, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await assertion()
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
}

function fieldsOf(fields: string[]): Record<string, string> {
  return Object.fromEntries(fields.flatMap((value, i) => (i % 2 === 0 ? [[value, fields[i + 1] ?? '']] : [])))
}
