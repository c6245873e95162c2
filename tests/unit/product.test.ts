import { describe, expect, it } from 'vitest'
import { LineConflict, NotAllocated } from '../../src/domain/errors.ts'
import { Product } from '../../src/domain/model.ts'

const tomorrow = '2026-11-24'
const later = '2026-12-24'

function productWith(sku: string, batches: Array<[string, number, string | null]>): Product {
  const product = new Product({ sku })
  for (const [ref, qty, eta] of batches) product.addBatch(ref, qty, eta)
  product.events.length = 0
  return product
}

describe('Product', () => {
  it('prefers warehouse batches to shipments', () => {
    const product = productWith('RETRO-CLOCK', [
      ['shipment-batch', 100, tomorrow],
      ['in-stock-batch', 100, null],
    ])
    product.allocate({ orderid: 'oref', sku: 'RETRO-CLOCK', qty: 10 })
    expect(product.batch('in-stock-batch')?.availableQuantity).toBe(90)
    expect(product.batch('shipment-batch')?.availableQuantity).toBe(100)
  })

  it('prefers earlier batches', () => {
    const product = productWith('MINIMALIST-SPOON', [
      ['slow', 100, later],
      ['normal', 100, '2026-12-01'],
      ['speedy', 100, tomorrow],
    ])
    product.allocate({ orderid: 'order1', sku: 'MINIMALIST-SPOON', qty: 10 })
    expect(product.batch('speedy')?.availableQuantity).toBe(90)
    expect(product.batch('normal')?.availableQuantity).toBe(100)
    expect(product.batch('slow')?.availableQuantity).toBe(100)
  })

  it('breaks a tie between equal etas by the batch created first', () => {
    const product = productWith('TWIN-LAMP', [
      ['first', 100, tomorrow],
      ['second', 100, tomorrow],
      ['warehouse-a', 100, null],
      ['warehouse-b', 100, null],
    ])
    expect(product.allocate({ orderid: 'o1', sku: 'TWIN-LAMP', qty: 1 }).batchref).toBe('warehouse-a')
    product.changeBatchQuantity('warehouse-a', 1)
    product.changeBatchQuantity('warehouse-b', 1)
    expect(product.allocate({ orderid: 'o2', sku: 'TWIN-LAMP', qty: 1 }).batchref).toBe('warehouse-b')
    expect(product.allocate({ orderid: 'o3', sku: 'TWIN-LAMP', qty: 1 }).batchref).toBe('first')
  })

  it('returns the allocated batch ref', () => {
    const product = productWith('HIGHBROW-POSTER', [
      ['in-stock-batch-ref', 100, null],
      ['shipment-batch-ref', 100, tomorrow],
    ])
    expect(product.allocate({ orderid: 'oref', sku: 'HIGHBROW-POSTER', qty: 10 }).batchref).toBe('in-stock-batch-ref')
  })

  it('records an Allocated event', () => {
    const product = productWith('SMALL-FORK', [['batch1', 10, null]])
    product.allocate({ orderid: 'order1', sku: 'SMALL-FORK', qty: 10 })
    expect(product.events).toEqual([
      { type: 'Allocated', orderid: 'order1', sku: 'SMALL-FORK', qty: 10, batchref: 'batch1' },
    ])
  })

  it('records an OutOfStock event if it cannot allocate, and changes nothing', () => {
    const product = productWith('SMALL-FORK', [['batch1', 10, tomorrow]])
    product.allocate({ orderid: 'order1', sku: 'SMALL-FORK', qty: 10 })
    const version = product.versionNumber
    expect(product.allocate({ orderid: 'order2', sku: 'SMALL-FORK', qty: 1 }).status).toBe('out_of_stock')
    expect(product.events.at(-1)).toEqual({
      type: 'OutOfStock',
      orderid: 'order2',
      sku: 'SMALL-FORK',
      qty: 1,
      backordered: false,
    })
    expect(product.versionNumber).toBe(version)
    expect(product.batch('batch1')?.allocatedQuantity).toBe(10)
  })

  it('increments the version number', () => {
    const product = productWith('SCANDI-PEN', [['b1', 100, null]])
    product.versionNumber = 7
    product.allocate({ orderid: 'oref', sku: 'SCANDI-PEN', qty: 10 })
    expect(product.versionNumber).toBe(8)
  })

  it('answers an idempotent re-send with the same batch and no second event', () => {
    const product = productWith('SCANDI-PEN', [['b1', 100, null]])
    const line = { orderid: 'oref', sku: 'SCANDI-PEN', qty: 10 }
    product.allocate(line)
    const version = product.versionNumber
    expect(product.allocate(line).batchref).toBe('b1')
    expect(product.events).toHaveLength(1)
    expect(product.versionNumber).toBe(version)
  })

  it('refuses a re-send with another qty as a conflict', () => {
    const product = productWith('SCANDI-PEN', [['b1', 100, null]])
    product.allocate({ orderid: 'oref', sku: 'SCANDI-PEN', qty: 10 })
    expect(() => product.allocate({ orderid: 'oref', sku: 'SCANDI-PEN', qty: 11 })).toThrow(LineConflict)
    expect(product.batch('b1')?.allocatedQuantity).toBe(10)
  })

  it('gives a cancelled allocated line its quantity back and records Deallocated', () => {
    const product = productWith('SCANDI-PEN', [['b1', 100, null]])
    product.allocate({ orderid: 'oref', sku: 'SCANDI-PEN', qty: 10 })
    product.cancel('oref')
    expect(product.batch('b1')?.availableQuantity).toBe(100)
    expect(product.events.at(-1)).toEqual({
      type: 'Deallocated',
      orderid: 'oref',
      sku: 'SCANDI-PEN',
      qty: 10,
      batchref: 'b1',
      reason: 'requested',
    })
  })

  it('refuses to cancel a line it does not hold', () => {
    const product = productWith('SCANDI-PEN', [['b1', 100, null]])
    expect(() => product.cancel('nobody')).toThrow(NotAllocated)
  })

  it('deallocates the most recently allocated lines first when a batch shrinks', () => {
    const product = productWith('BIG-SOFA', [['b1', 10, null]])
    for (const orderid of ['o1', 'o2', 'o3', 'o4']) product.allocate({ orderid, sku: 'BIG-SOFA', qty: 2 })
    const moved = product.changeBatchQuantity('b1', 5)
    expect(moved.map((a) => a.line.orderid)).toEqual(['o4', 'o3'])
    expect(product.batch('b1')?.allocatedQuantity).toBe(4)
    expect(product.events.filter((e) => e.type === 'Deallocated')).toHaveLength(2)
  })

  it('keeps on a shrunk batch a line taken off that the room left can take back', () => {
    const product = productWith('BIG-SOFA', [['b1', 20, null]])
    product.allocate({ orderid: 'o1', sku: 'BIG-SOFA', qty: 10 })
    product.allocate({ orderid: 'o2', sku: 'BIG-SOFA', qty: 7 })
    product.allocate({ orderid: 'o3', sku: 'BIG-SOFA', qty: 1 }, { holdSeconds: 60, now: 0 })
    product.events.length = 0
    // 18 on a batch of 15: o3 and o2 come off; o2 (7) fits nowhere, o3 (1) fits the 5 left where it was.
    const moved = product.changeBatchQuantity('b1', 15)
    expect(moved.map((a) => a.line.orderid)).toEqual(['o2'])
    expect(product.lines.get('o3')).toMatchObject({ status: 'held', batchref: 'b1', expiresAt: 60_000 })
    expect(product.lines.get('o2')).toMatchObject({ status: 'backordered', batchref: null })
    expect(product.batch('b1')?.allocatedQuantity).toBe(11)
    expect(product.events.filter((e) => 'orderid' in e && e.orderid === 'o3')).toEqual([])
  })
})
