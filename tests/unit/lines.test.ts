import { describe, expect, it } from 'vitest'
import { HoldWithBackorder, LineConflict, NotAllocated } from '../../src/domain/errors.ts'
import { bootstrapTestApp, type TestApp } from './fakes.ts'

const SKU = 'WOBBLY-TABLE'

async function withBatches(...batches: Array<[string, number, string | null]>): Promise<TestApp> {
  const app = bootstrapTestApp()
  for (const [ref, qty, eta] of batches) await app.bus.handle({ type: 'CreateBatch', ref, sku: SKU, qty, eta })
  return app
}

const allocate = (app: TestApp, orderid: string, qty: number, options: object = {}) =>
  app.bus.handle({ type: 'Allocate', orderid, sku: SKU, qty, ...options })

const line = (app: TestApp, orderid: string) => app.storage.allocations.find((a) => a.orderid === orderid)
const states = (app: TestApp) =>
  Object.fromEntries(app.storage.allocations.map((a) => [a.orderid, [a.status, a.batchref]]))
const eventsAfter = (app: TestApp, count: number) => app.events().slice(count)

describe('backorders', () => {
  it('keeps a line no batch can take as backordered when asked, and tells the stock team that it waits', async () => {
    const app = await withBatches(['b1', 5, null])
    const result = await allocate(app, 'o1', 8, { backorder: true })
    expect(result).toEqual({ status: 'backordered', batchref: null, eta: null, expiresAt: null })
    expect(line(app, 'o1')).toMatchObject({ status: 'backordered', batchref: null, qty: 8 })
    expect(app.events().slice(-2)).toEqual([
      { type: 'Backordered', orderid: 'o1', sku: SKU, qty: 8 },
      { type: 'OutOfStock', orderid: 'o1', sku: SKU, qty: 8, backordered: true },
    ])
    expect(app.notifications.sent).toEqual([
      {
        subject: `Out of stock for ${SKU}`,
        body: `Order o1 asked for 8 of ${SKU}; no batch can take it now, so the line waits as a backorder of 8 and is allocated as soon as stock arrives.`,
      },
    ])
  })

  it('keeps nothing of a line no batch can take when backorder is not asked, and says so to the stock team', async () => {
    const app = await withBatches(['b1', 5, null])
    expect((await allocate(app, 'o1', 8)).status).toBe('out_of_stock')
    expect(app.storage.allocations).toEqual([])
    expect(app.events().at(-1)).toEqual({ type: 'OutOfStock', orderid: 'o1', sku: SKU, qty: 8, backordered: false })
    expect(app.notifications.sent).toEqual([
      { subject: `Out of stock for ${SKU}`, body: `Order o1 asked for 8 of ${SKU}; no batch can take it.` },
    ])
  })

  it('fills waiting lines oldest first when a batch arrives, as far as it goes', async () => {
    const app = await withBatches(['b1', 1, null])
    for (const orderid of ['o1', 'o2', 'o3']) await allocate(app, orderid, 4, { backorder: true })
    const before = app.events().length
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: SKU, qty: 9, eta: '2027-01-05' })
    expect(states(app)).toEqual({ o1: ['allocated', 'b2'], o2: ['allocated', 'b2'], o3: ['backordered', null] })
    expect(eventsAfter(app, before).filter((e) => e.type === 'Allocated')).toEqual([
      { type: 'Allocated', orderid: 'o1', sku: SKU, qty: 4, batchref: 'b2' },
      { type: 'Allocated', orderid: 'o2', sku: SKU, qty: 4, batchref: 'b2' },
    ])
  })

  it('reads no more waiting lines than the new stock could take, however long the queue', async () => {
    const app = await withBatches(['b1', 1, null])
    await allocate(app, 'empties-it', 1)
    for (let i = 0; i < 20; i++) await allocate(app, `w${i}`, 1, { backorder: true })
    app.storage.waitingRead = 0
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: SKU, qty: 3, eta: null })
    expect(['w0', 'w1', 'w2', 'w3'].map((orderid) => line(app, orderid)?.status)).toEqual([
      'allocated',
      'allocated',
      'allocated',
      'backordered',
    ])
    expect(app.storage.waitingRead).toBe(3)
  })

  it('passes over a waiting line that fits no single batch and lets a later one go ahead', async () => {
    const app = await withBatches(['b1', 1, null])
    await allocate(app, 'big', 8, { backorder: true })
    await allocate(app, 'small', 3, { backorder: true })
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: SKU, qty: 5, eta: null })
    expect(states(app)).toEqual({ big: ['backordered', null], small: ['allocated', 'b2'] })
  })

  it('fills a waiting line when a batch grows, when a line is cancelled and when a hold is released', async () => {
    const app = await withBatches(['b1', 4, null])
    await allocate(app, 'first', 4)
    await allocate(app, 'w1', 2, { backorder: true })
    await allocate(app, 'w2', 2, { backorder: true })
    await allocate(app, 'w3', 2, { backorder: true })
    await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'b1', qty: 6 })
    expect(line(app, 'w1')?.status).toBe('allocated')
    await app.bus.handle({ type: 'Deallocate', orderid: 'first', sku: SKU })
    expect(states(app)).toMatchObject({ w2: ['allocated', 'b1'], w3: ['allocated', 'b1'] })
  })

  it('answers a waiting line sent again as still backordered, with or without backorder, changing nothing', async () => {
    const app = await withBatches(['b1', 1, null])
    await allocate(app, 'o1', 4, { backorder: true })
    const before = app.events().length
    expect((await allocate(app, 'o1', 4)).status).toBe('backordered')
    expect((await allocate(app, 'o1', 4, { backorder: true })).status).toBe('backordered')
    expect((await allocate(app, 'o1', 4, { holdSeconds: 60 })).status).toBe('backordered')
    expect(app.events()).toHaveLength(before)
  })

  it('refuses the same line with another qty in every state', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'allocated', 1)
    await allocate(app, 'held', 1, { holdSeconds: 60 })
    await allocate(app, 'waiting', 9, { backorder: true })
    for (const orderid of ['allocated', 'held', 'waiting']) {
      await expect(allocate(app, orderid, 2, { backorder: true })).rejects.toThrow(LineConflict)
    }
  })

  it('fills a smaller waiting line with the room a shrunk batch keeps after a larger line left it', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'large', 5)
    await allocate(app, 'small', 4, { backorder: true })
    await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'b1', qty: 4 })
    expect(states(app)).toEqual({ large: ['backordered', null], small: ['allocated', 'b1'] })
  })

  it('keeps a line moved off a shrunk batch in its place in the queue, ahead of later waiting lines', async () => {
    const app = await withBatches(['b1', 4, null])
    await allocate(app, 'moved', 4)
    await allocate(app, 'later', 4, { backorder: true })
    await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'b1', qty: 3 })
    expect(line(app, 'moved')?.status).toBe('backordered')
    expect(app.events().filter((e) => e.type === 'Deallocated')).toEqual([
      { type: 'Deallocated', orderid: 'moved', sku: SKU, qty: 4, batchref: 'b1', reason: 'batch-shrunk' },
    ])
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: SKU, qty: 4, eta: null })
    expect(states(app)).toEqual({ moved: ['allocated', 'b2'], later: ['backordered', null] })
  })
})

describe('holds', () => {
  it('holds a line on the best batch until now + holdSeconds, counted as allocated', async () => {
    const app = await withBatches(['b1', 10, '2027-01-05'])
    const expiresAt = new Date(app.clock.now() + 600_000).toISOString()
    expect(await allocate(app, 'o1', 3, { holdSeconds: 600 })).toEqual({
      status: 'held',
      batchref: 'b1',
      eta: '2027-01-05',
      expiresAt,
    })
    expect(app.storage.batches.get('b1')?.allocated).toBe(3)
    expect(app.events().at(-1)).toEqual({ type: 'Held', orderid: 'o1', sku: SKU, qty: 3, batchref: 'b1', expiresAt })
  })

  it('confirms a live hold when the line is sent again without holdSeconds', async () => {
    const app = await withBatches(['b1', 10, null])
    await allocate(app, 'o1', 3, { holdSeconds: 600 })
    app.clock.advance(599)
    expect(await allocate(app, 'o1', 3)).toMatchObject({ status: 'allocated', batchref: 'b1', expiresAt: null })
    expect(app.events().at(-1)).toEqual({ type: 'Allocated', orderid: 'o1', sku: SKU, qty: 3, batchref: 'b1' })
    app.clock.advance(10)
    await app.relay.sweep()
    expect(line(app, 'o1')).toMatchObject({ status: 'allocated', expiresAt: null })
  })

  it('extends a hold to now + holdSeconds, never to an earlier time', async () => {
    const app = await withBatches(['b1', 10, null])
    const start = app.clock.now()
    await allocate(app, 'o1', 3, { holdSeconds: 600 })
    app.clock.advance(100)
    const count = app.events().length
    expect((await allocate(app, 'o1', 3, { holdSeconds: 60 })).expiresAt).toBe(new Date(start + 600_000).toISOString())
    expect(app.events()).toHaveLength(count)
    expect((await allocate(app, 'o1', 3, { holdSeconds: 600 })).expiresAt).toBe(new Date(start + 700_000).toISOString())
    expect(app.events().at(-1)).toMatchObject({ type: 'Held', expiresAt: new Date(start + 700_000).toISOString() })
  })

  it('releases an expired hold in the sweep, once, and fills a waiting line with its stock', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'held', 5, { holdSeconds: 30 })
    await allocate(app, 'waiting', 4, { backorder: true })
    app.clock.advance(29)
    expect(await app.relay.sweep()).toBe(0)
    expect(line(app, 'held')?.status).toBe('held')
    app.clock.advance(1)
    await app.relay.sweep()
    expect(states(app)).toEqual({ waiting: ['allocated', 'b1'] })
    expect(app.events().filter((e) => e.type === 'HoldReleased')).toEqual([
      { type: 'HoldReleased', orderid: 'held', sku: SKU, qty: 5, batchref: 'b1', reason: 'expired' },
    ])
    await app.relay.sweep()
    expect(app.events().filter((e) => e.type === 'HoldReleased')).toHaveLength(1)
  })

  it('releases a hold once when two sweeps find it expired at the same moment', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'held', 5, { holdSeconds: 30 })
    app.clock.advance(30)
    const released = await Promise.all([app.relay.sweep(), app.relay.sweep(), app.relay.sweep()])
    expect(released.reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(1)
    expect(app.events().filter((e) => e.type === 'HoldReleased')).toHaveLength(1)
    expect(app.storage.batches.get('b1')?.allocated).toBe(0)
  })

  it('never confirms an expired hold as a hold: sending the line again is a new allocation', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'o1', 5, { holdSeconds: 30 })
    app.clock.advance(30)
    expect(await allocate(app, 'o1', 5)).toMatchObject({ status: 'allocated', batchref: 'b1' })
    expect(app.events().slice(-2)).toEqual([
      { type: 'HoldReleased', orderid: 'o1', sku: SKU, qty: 5, batchref: 'b1', reason: 'expired' },
      { type: 'Allocated', orderid: 'o1', sku: SKU, qty: 5, batchref: 'b1' },
    ])
    expect(app.storage.batches.get('b1')?.allocated).toBe(5)
  })

  it('takes an expired hold sent again with another qty as a new line of that qty', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'o1', 5, { holdSeconds: 30 })
    app.clock.advance(31)
    expect(await allocate(app, 'o1', 3)).toMatchObject({ status: 'allocated', batchref: 'b1' })
    expect(line(app, 'o1')).toMatchObject({ qty: 3, status: 'allocated' })
    expect(app.storage.batches.get('b1')?.allocated).toBe(3)
  })

  it('keeps an allocated line allocated when it is sent again with holdSeconds', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'o1', 2)
    expect(await allocate(app, 'o1', 2, { holdSeconds: 60 })).toMatchObject({ status: 'allocated', expiresAt: null })
  })

  it('refuses a hold together with a backorder and writes nothing', async () => {
    const app = await withBatches(['b1', 5, null])
    const commits = app.storage.commits
    await expect(allocate(app, 'o1', 2, { holdSeconds: 60, backorder: true })).rejects.toThrow(HoldWithBackorder)
    expect(app.storage.allocations).toEqual([])
    expect(app.storage.batches.get('b1')?.allocated).toBe(0)
    expect(app.storage.commits - commits).toBeLessThanOrEqual(1)
  })

  it('answers out of stock for a hold no batch can take, keeping nothing', async () => {
    const app = await withBatches(['b1', 5, null])
    expect((await allocate(app, 'o1', 6, { holdSeconds: 60 })).status).toBe('out_of_stock')
    expect(app.storage.allocations).toEqual([])
  })

  it('moves a held line off a shrunk batch with its expiry, or releases it when no batch can take it', async () => {
    const app = await withBatches(['b1', 10, null], ['b2', 3, '2027-01-05'])
    await allocate(app, 'small', 3, { holdSeconds: 60 })
    await allocate(app, 'large', 5, { holdSeconds: 60 })
    const expiresAt = line(app, 'small')?.expiresAt
    await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'b1', qty: 0 })
    expect(line(app, 'small')).toMatchObject({ status: 'held', batchref: 'b2', expiresAt })
    expect(line(app, 'large')).toBeUndefined()
    expect(app.events().filter((e) => e.type === 'HoldReleased')).toEqual([
      { type: 'HoldReleased', orderid: 'large', sku: SKU, qty: 5, batchref: 'b1', reason: 'batch-shrunk' },
    ])
  })
})

describe('cancelling', () => {
  it('ends a line in any state with the event of that state', async () => {
    const app = await withBatches(['b1', 5, null])
    await allocate(app, 'allocated', 2)
    await allocate(app, 'held', 3, { holdSeconds: 60 })
    await allocate(app, 'waiting', 9, { backorder: true })
    const before = app.events().length
    for (const orderid of ['allocated', 'held', 'waiting']) {
      await app.bus.handle({ type: 'Deallocate', orderid, sku: SKU })
    }
    expect(eventsAfter(app, before)).toEqual([
      { type: 'Deallocated', orderid: 'allocated', sku: SKU, qty: 2, batchref: 'b1', reason: 'requested' },
      { type: 'HoldReleased', orderid: 'held', sku: SKU, qty: 3, batchref: 'b1', reason: 'cancelled' },
      { type: 'BackorderCancelled', orderid: 'waiting', sku: SKU, qty: 9 },
    ])
    expect(app.storage.allocations).toEqual([])
    expect(app.storage.batches.get('b1')?.allocated).toBe(0)
  })

  it('refuses to cancel a line that does not exist', async () => {
    const app = await withBatches(['b1', 5, null])
    await expect(app.bus.handle({ type: 'Deallocate', orderid: 'none', sku: SKU })).rejects.toThrow(NotAllocated)
  })
})
