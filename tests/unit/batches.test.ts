import { describe, expect, it } from 'vitest'
import { Batch, type OrderLine, Product } from '../../src/domain/model.ts'

function batchAndLine(sku: string, batchQty: number, lineQty: number): [Batch, OrderLine] {
  return [
    new Batch({ ref: 'batch-001', sku, eta: '2026-12-01', seq: 1, purchasedQuantity: batchQty }),
    { orderid: 'order-123', sku, qty: lineQty },
  ]
}

describe('Batch', () => {
  it('reduces the available quantity when a line is allocated to it', () => {
    const product = new Product({ sku: 'SMALL-TABLE' })
    product.addBatch('batch-001', 20, null)
    product.allocate({ orderid: 'order-ref', sku: 'SMALL-TABLE', qty: 2 })
    expect(product.batch('batch-001')?.availableQuantity).toBe(18)
  })

  it('can allocate if available is greater than required', () => {
    const [batch, line] = batchAndLine('ELEGANT-LAMP', 20, 2)
    expect(batch.canAllocate(line)).toBe(true)
  })

  it('cannot allocate if available is smaller than required', () => {
    const [batch, line] = batchAndLine('ELEGANT-LAMP', 2, 20)
    expect(batch.canAllocate(line)).toBe(false)
  })

  it('can allocate if available is equal to required', () => {
    const [batch, line] = batchAndLine('ELEGANT-LAMP', 2, 2)
    expect(batch.canAllocate(line)).toBe(true)
  })

  it('cannot allocate if skus do not match', () => {
    const batch = new Batch({ ref: 'batch-001', sku: 'UNCOMFORTABLE-CHAIR', eta: null, seq: 1, purchasedQuantity: 100 })
    expect(batch.canAllocate({ orderid: 'order-123', sku: 'EXPENSIVE-TOASTER', qty: 10 })).toBe(false)
  })

  it('takes the same line only once (allocation is idempotent)', () => {
    const product = new Product({ sku: 'ANGULAR-DESK' })
    product.addBatch('batch-001', 20, null)
    const line = { orderid: 'order-123', sku: 'ANGULAR-DESK', qty: 2 }
    product.allocate(line)
    product.allocate(line)
    expect(product.batch('batch-001')?.availableQuantity).toBe(18)
  })
})
