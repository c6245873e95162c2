import { describe, expect, it } from 'vitest'
import { ConflictingBatch } from '../../src/service-layer/handlers.ts'
import { bootstrapTestApp } from './fakes.ts'

const batch = (ref: string, sku: string, qty = 10, eta: string | null = null) => ({ ref, sku, qty, eta })

describe('addBatches', () => {
  it('adds every batch, of new and existing products, in one commit', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b0', sku: 'LAMP', qty: 5, eta: null })
    const result = await app.bus.handle({
      type: 'CreateBatches',
      batches: [batch('b1', 'LAMP'), batch('b2', 'DESK', 20, '2027-01-31'), batch('b3', 'LAMP', 30)],
    })
    expect(result).toEqual({ added: 3, present: 0 })
    expect(app.storage.commits).toBe(2)
    const stored = [...app.storage.batches.values()].map((b) => [b.ref, b.sku, b.purchased])
    expect(stored.sort()).toEqual([
      ['b0', 'LAMP', 5],
      ['b1', 'LAMP', 10],
      ['b2', 'DESK', 20],
      ['b3', 'LAMP', 30],
    ])
    expect(app.events().filter((e) => e.type === 'BatchCreated')).toHaveLength(4)
  })

  it('changes nothing when the same batches are sent again', async () => {
    const app = bootstrapTestApp()
    const batches = [batch('b1', 'LAMP'), batch('b2', 'DESK')]
    await app.bus.handle({ type: 'CreateBatches', batches })
    const events = app.events().length
    expect(await app.bus.handle({ type: 'CreateBatches', batches })).toEqual({ added: 0, present: 2 })
    expect(app.events()).toHaveLength(events)
  })

  it('writes none of the batches when one conflicts with a stored batch, naming its place', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 10, eta: null })
    const refused = app.bus.handle({
      type: 'CreateBatches',
      batches: [batch('b2', 'LAMP'), batch('b1', 'LAMP', 11)],
    })
    await expect(refused).rejects.toThrow(ConflictingBatch)
    await expect(refused).rejects.toMatchObject({ index: 1, ref: 'b1' })
    expect([...app.storage.batches.keys()]).toEqual(['b1'])
  })

  it('refuses a ref given twice with two skus, or stored under another sku', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 10, eta: null })
    await expect(
      app.bus.handle({ type: 'CreateBatches', batches: [batch('b2', 'LAMP'), batch('b2', 'DESK')] }),
    ).rejects.toMatchObject({ index: 1, ref: 'b2' })
    await expect(
      app.bus.handle({ type: 'CreateBatches', batches: [batch('b3', 'DESK'), batch('b1', 'DESK')] }),
    ).rejects.toMatchObject({ index: 1, ref: 'b1' })
    expect([...app.storage.batches.keys()]).toEqual(['b1'])
  })

  it('fills the lines waiting on a sku with the stock it brings, oldest first', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 1, eta: null })
    for (const orderid of ['o1', 'o2', 'o3']) {
      await app.bus.handle({ type: 'Allocate', orderid, sku: 'LAMP', qty: 2, backorder: true })
    }
    await app.bus.handle({
      type: 'CreateBatches',
      batches: [batch('b2', 'LAMP', 4, '2027-01-31'), batch('b3', 'DESK')],
    })
    const lines = app.storage.allocations.map((a) => [a.orderid, a.status, a.batchref])
    expect(lines).toEqual([
      ['o1', 'allocated', 'b2'],
      ['o2', 'allocated', 'b2'],
      ['o3', 'backordered', null],
    ])
  })
})
