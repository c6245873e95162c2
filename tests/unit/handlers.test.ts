import { describe, expect, it } from 'vitest'
import { BatchConflict, InvalidSku, LineConflict, NotAllocated } from '../../src/domain/errors.ts'
import { bootstrapTestApp } from './fakes.ts'

describe('addBatch', () => {
  it('adds a batch for a new product', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'CRUNCHY-ARMCHAIR', qty: 100, eta: null })
    expect(app.storage.batches.get('b1')).toMatchObject({ sku: 'CRUNCHY-ARMCHAIR', purchased: 100 })
    expect(app.storage.commits).toBe(1)
  })

  it('adds a batch for an existing product', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'GARISH-RUG', qty: 100, eta: null })
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: 'GARISH-RUG', qty: 99, eta: null })
    expect([...app.storage.batches.keys()]).toEqual(['b1', 'b2'])
  })

  it('treats the same batch sent twice as one', async () => {
    const app = bootstrapTestApp()
    const command = { type: 'CreateBatch', ref: 'b1', sku: 'GARISH-RUG', qty: 100, eta: '2026-12-01' } as const
    expect(await app.bus.handle(command)).toEqual({ created: true })
    expect(await app.bus.handle(command)).toEqual({ created: false })
    expect(app.events().filter((e) => e.type === 'BatchCreated')).toHaveLength(1)
  })

  it('refuses another batch under an existing ref, in the same or another sku', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'GARISH-RUG', qty: 100, eta: null })
    await expect(
      app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'GARISH-RUG', qty: 5, eta: null }),
    ).rejects.toThrow(BatchConflict)
    await expect(app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'OTHER', qty: 100, eta: null })).rejects.toThrow(
      BatchConflict,
    )
  })
})

describe('allocate', () => {
  it('allocates and returns the batch ref', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch1', sku: 'COMPLICATED-LAMP', qty: 100, eta: null })
    const result = await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'COMPLICATED-LAMP', qty: 10 })
    expect(result).toEqual({ status: 'allocated', batchref: 'batch1', eta: null, expiresAt: null })
    expect(app.storage.batches.get('batch1')?.allocated).toBe(10)
  })

  it('errors for an invalid sku', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'AREALSKU', qty: 100, eta: null })
    await expect(app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'NONEXISTENTSKU', qty: 10 })).rejects.toThrow(
      new InvalidSku('NONEXISTENTSKU'),
    )
  })

  it('commits', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'OMINOUS-MIRROR', qty: 100, eta: null })
    const before = app.storage.commits
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'OMINOUS-MIRROR', qty: 10 })
    expect(app.storage.commits).toBe(before + 1)
  })

  it('sends an e-mail to the stock team when out of stock', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'POPULAR-CURTAINS', qty: 9, eta: null })
    const result = await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'POPULAR-CURTAINS', qty: 10 })
    expect(result).toEqual({ status: 'out_of_stock', batchref: null, eta: null, expiresAt: null })
    expect(app.notifications.sent.map((n) => n.subject)).toEqual(['Out of stock for POPULAR-CURTAINS'])
  })

  it('answers a re-sent line with the same batch, allocating it once', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 100, eta: null })
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: 'LAMP', qty: 100, eta: '2026-12-01' })
    const line = { type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 60 } as const
    await app.bus.handle(line)
    expect(await app.bus.handle(line)).toMatchObject({ status: 'allocated', batchref: 'b1' })
    expect(app.storage.batches.get('b1')?.allocated).toBe(60)
    expect(app.storage.batches.get('b2')?.allocated).toBe(0)
    expect(app.events().filter((e) => e.type === 'Allocated')).toHaveLength(1)
  })

  it('refuses a re-sent line with another qty', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 100, eta: null })
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 10 })
    await expect(app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 11 })).rejects.toThrow(
      LineConflict,
    )
    expect(app.storage.batches.get('b1')?.allocated).toBe(10)
  })

  it('publishes every committed event once, with its outbox id, and marks it delivered', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 100, eta: null })
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 10 })
    expect(app.publisher.published).toEqual(app.storage.outbox)
    expect([...app.storage.delivered]).toEqual(app.storage.outbox.map((e) => e.id))
  })
})

describe('deallocate', () => {
  it('gives the quantity back to the batch and does not reallocate the line', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 100, eta: null })
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 10 })
    expect(await app.bus.handle({ type: 'Deallocate', orderid: 'o1', sku: 'LAMP' })).toEqual({
      status: 'allocated',
      batchref: 'b1',
    })
    expect(app.storage.batches.get('b1')?.allocated).toBe(0)
    expect(app.storage.allocations).toEqual([])
  })

  it('errors for a line that is not allocated', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 100, eta: null })
    await expect(app.bus.handle({ type: 'Deallocate', orderid: 'o1', sku: 'LAMP' })).rejects.toThrow(NotAllocated)
  })
})

describe('changeBatchQuantity', () => {
  it('changes the available quantity', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch1', sku: 'ADORABLE-SETTEE', qty: 100, eta: null })
    await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'batch1', qty: 50 })
    expect(app.storage.batches.get('batch1')?.purchased).toBe(50)
  })

  it('reallocates if necessary', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch1', sku: 'INDIFFERENT-TABLE', qty: 50, eta: null })
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch2', sku: 'INDIFFERENT-TABLE', qty: 50, eta: '2026-11-24' })
    await app.bus.handle({ type: 'Allocate', orderid: 'order1', sku: 'INDIFFERENT-TABLE', qty: 20 })
    await app.bus.handle({ type: 'Allocate', orderid: 'order2', sku: 'INDIFFERENT-TABLE', qty: 20 })
    expect(app.storage.batches.get('batch1')?.allocated).toBe(40)

    const result = await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'batch1', qty: 25 })

    expect(result.deallocated.map((l) => l.orderid)).toEqual(['order2'])
    expect(app.storage.batches.get('batch1')?.allocated).toBe(20)
    expect(app.storage.batches.get('batch2')?.allocated).toBe(20)
    expect(app.storage.allocations.find((a) => a.orderid === 'order2')?.batchref).toBe('batch2')
  })

  it('deallocates the most recent lines first until the batch fits', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch1', sku: 'STOOL', qty: 10, eta: null })
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch2', sku: 'STOOL', qty: 100, eta: '2026-12-01' })
    for (const orderid of ['o1', 'o2', 'o3', 'o4', 'o5']) {
      await app.bus.handle({ type: 'Allocate', orderid, sku: 'STOOL', qty: 2 })
    }
    const result = await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'batch1', qty: 5 })
    expect(result.deallocated.map((l) => l.orderid)).toEqual(['o5', 'o4', 'o3'])
    const where = Object.fromEntries(app.storage.allocations.map((a) => [a.orderid, a.batchref]))
    expect(where).toEqual({ o1: 'batch1', o2: 'batch1', o3: 'batch2', o4: 'batch2', o5: 'batch2' })
  })

  it('keeps a moved line that no batch can take as a backorder, never silently dropped', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch1', sku: 'RARE-VASE', qty: 10, eta: null })
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'RARE-VASE', qty: 6 })
    await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'batch1', qty: 4 })
    expect(app.storage.allocations).toMatchObject([{ orderid: 'o1', status: 'backordered', batchref: null }])
    expect(app.events().slice(-2)).toEqual([
      { type: 'Backordered', orderid: 'o1', sku: 'RARE-VASE', qty: 6 },
      { type: 'OutOfStock', orderid: 'o1', sku: 'RARE-VASE', qty: 6, backordered: true },
    ])
    expect(app.notifications.sent).toEqual([
      {
        subject: 'Out of stock for RARE-VASE',
        body: 'Order o1 asked for 6 of RARE-VASE; no batch can take it now, so the line waits as a backorder of 6 and is allocated as soon as stock arrives.',
      },
    ])
  })

  it('does not deallocate anything when the batch grows', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'batch1', sku: 'RUG', qty: 10, eta: null })
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'RUG', qty: 6 })
    expect(await app.bus.handle({ type: 'ChangeBatchQuantity', ref: 'batch1', qty: 20 })).toEqual({ deallocated: [] })
    expect(app.storage.batches.get('batch1')).toMatchObject({ purchased: 20, allocated: 6 })
  })
})
