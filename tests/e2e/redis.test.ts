import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { redisAvailable, redisUrl, testClient } from '../support/redis.ts'
import { type Client, client, postgresMode, type RunningService, type Storage, startService } from './support.ts'

type StreamEntry = [id: string, fields: string[]]

/** The running service, driven from outside through the contract's own Redis names. */
describe('events and commands over Redis', () => {
  let storage: Storage
  let service: RunningService | null = null
  let api: Client
  let redis: Redis
  let subscriber: Redis
  const received: Array<{ orderid: string; sku: string; qty: number; batchref: string }> = []

  beforeAll(async () => {
    if (!(await redisAvailable())) return
    storage = await postgresMode.prepare()
    service = await startService({ ...storage.env, REDIS_URL: redisUrl })
    api = client(service.url)
    redis = testClient()
    subscriber = testClient()
    subscriber.on('message', (_channel: string, message: string) => received.push(JSON.parse(message)))
    await subscriber.subscribe('line_allocated')
  })
  afterAll(async () => {
    subscriber?.disconnect()
    redis?.disconnect()
    await service?.stop()
    await storage?.drop()
  })

  const addBatch = async (ref: string, sku: string, qty: number, eta: string | null) =>
    expect((await api.post('/batches', { ref, sku, qty, eta })).status).toBe(201)

  /**
   * Waits until the service itself listens to the book's channel (one process of a deployment does: the
   * holder of its lease); a message published before would be lost (pub/sub). Its own connection is looked
   * for: another process subscribed to the channel counts for NUMSUB.
   */
  const serviceSubscribed = () =>
    vi.waitFor(
      async () => {
        const list = (await redis.client('LIST')) as string
        const subscribed = list
          .split('\n')
          .filter((line) => line.includes(`-${service?.pid}:subscriber `) && / sub=[1-9]/.test(line))
        expect(subscribed.length).toBeGreaterThan(0)
      },
      { timeout: 15_000 },
    )

  /** The book's scenario: an order on the earlier of two batches moves to the later one when it shrinks. */
  async function shrinkMovesTheLine(beforePublishing: () => Promise<void> = serviceSubscribed): Promise<void> {
    const [orderid, sku] = [randomOrderid(), randomSku()]
    const [earlier, later] = [randomBatchref('early'), randomBatchref('late')]
    await addBatch(earlier, sku, 10, '2027-01-01')
    await addBatch(later, sku, 10, '2027-01-02')
    expect((await api.post('/allocations', { orderid, sku, qty: 10 })).body.batchref).toBe(earlier)
    await vi.waitFor(() => expect(received).toContainEqual({ orderid, sku, qty: 10, batchref: earlier }))
    await beforePublishing()

    await redis.publish('change_batch_quantity', JSON.stringify({ batchref: earlier, qty: 5 }))

    await vi.waitFor(() => expect(received).toContainEqual({ orderid, sku, qty: 10, batchref: later }), {
      timeout: 3000,
    })
  }

  it('reallocates a line when change_batch_quantity shrinks its batch, and says so on line_allocated', async (ctx) => {
    if (!service) return ctx.skip()
    await shrinkMovesTheLine()
  })

  it('recovers when its Redis connections drop, without a restart', async (ctx) => {
    if (!service) return ctx.skip()
    const ours = (await redis.client('LIST')) as string
    const ids = ours
      .split('\n')
      .filter((line) => line.includes('name=allocation-consumer:') && line.includes(`-${service?.pid}:`))
      .map((line) => /id=(\d+)/.exec(line)?.[1])
    expect(ids.length).toBe(3)
    for (const id of ids) await redis.client('KILL', 'ID', id as string)

    // The subscriber comes back on its own; a message published before it has would be lost (pub/sub).
    await shrinkMovesTheLine(serviceSubscribed)
  })

  it('publishes every event to allocation:events with its outbox id', async (ctx) => {
    if (!service) return ctx.skip()
    const [orderid, sku, ref] = [randomOrderid(), randomSku(), randomBatchref()]
    await addBatch(ref, sku, 10, null)
    await api.post('/allocations', { orderid, sku, qty: 3 })
    await vi.waitFor(async () => {
      const entries = (await redis.xrevrange('allocation:events', '+', '-', 'COUNT', 200)) as StreamEntry[]
      const ours = entries
        .map(([, fields]) => fieldsOf(fields))
        .filter((f) => JSON.parse(f.payload ?? '{}').sku === sku)
      expect(ours.map((f) => f.type).sort()).toEqual(['Allocated', 'BatchCreated'])
      for (const entry of ours) expect(Number(entry.id)).toBeGreaterThan(0)
    })
  })

  it('applies an Allocate entry of allocation:commands once, and acknowledges it', async (ctx) => {
    if (!service) return ctx.skip()
    const [orderid, sku, ref] = [randomOrderid(), randomSku(), randomBatchref()]
    await addBatch(ref, sku, 10, null)
    const payload = JSON.stringify({ orderid, sku, qty: 4 })
    await redis.xadd('allocation:commands', '*', 'type', 'Allocate', 'payload', payload)
    await vi.waitFor(async () =>
      expect((await api.get(`/allocations/${orderid}`)).body).toEqual([{ sku, batchref: ref }]),
    )
    await vi.waitFor(async () => {
      const [pending] = (await redis.xpending('allocation:commands', 'allocation')) as [number]
      expect(pending).toBe(0)
    })
    expect((await api.get(`/batches/${ref}`)).body.allocated).toBe(4)
  })

  it('moves a malformed command to allocation:dead-letter with the reason and keeps going', async (ctx) => {
    if (!service) return ctx.skip()
    const [orderid, sku, ref] = [randomOrderid(), randomSku(), randomBatchref()]
    await addBatch(ref, sku, 10, null)
    const bad = await redis.xadd('allocation:commands', '*', 'type', 'Allocate', 'payload', '{"orderid": ')
    await redis.xadd(
      'allocation:commands',
      '*',
      'type',
      'Allocate',
      'payload',
      JSON.stringify({ orderid, sku, qty: 1 }),
    )
    await vi.waitFor(async () => expect((await api.get(`/allocations/${orderid}`)).status).toBe(200))
    const letters = (await redis.xrevrange('allocation:dead-letter', '+', '-', 'COUNT', 100)) as StreamEntry[]
    const ours = letters.map(([, fields]) => fieldsOf(fields)).find((f) => f.id === bad)
    expect(ours?.reason).toMatch(/JSON/i)
  })

  it('applies ChangeBatchEta from allocation:commands and publishes BatchEtaChanged to allocation:events', async (ctx) => {
    if (!service) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await addBatch(ref, sku, 10, '2027-01-05')
    const bad = await redis.xadd(
      'allocation:commands',
      '*',
      'type',
      'ChangeBatchEta',
      'payload',
      JSON.stringify({ ref, eta: '2027-02-30' }),
    )
    await redis.xadd(
      'allocation:commands',
      '*',
      'type',
      'ChangeBatchEta',
      'payload',
      JSON.stringify({ ref, eta: null }),
    )

    await vi.waitFor(async () => {
      const entries = (await redis.xrevrange('allocation:events', '+', '-', 'COUNT', 200)) as StreamEntry[]
      const changed = entries
        .map(([, fields]) => fieldsOf(fields))
        .filter((f) => f.type === 'BatchEtaChanged' && JSON.parse(f.payload ?? '{}').sku === sku)
      expect(changed.map((f) => JSON.parse(f.payload ?? '{}'))).toEqual([
        { type: 'BatchEtaChanged', ref, sku, eta: null },
      ])
    })
    expect((await api.get(`/batches/${ref}`)).body.eta).toBeNull()
    const letters = (await redis.xrevrange('allocation:dead-letter', '+', '-', 'COUNT', 100)) as StreamEntry[]
    expect(letters.map(([, fields]) => fieldsOf(fields)).find((f) => f.id === bad)?.reason).toMatch(/eta/)
  })
})

function fieldsOf(fields: string[]): Record<string, string> {
  const record: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string
  return record
}
