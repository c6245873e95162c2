import { BatchConflict, LineConflict, NotAllocated, UnknownBatch } from './errors.ts'
import type { DeallocationReason, DomainEvent } from './events.ts'

export type OrderLine = Readonly<{ orderid: string; sku: string; qty: number }>

export type Allocation = Readonly<{ line: OrderLine; batchref: string }>

export class Batch {
  readonly ref: string
  readonly sku: string
  /** `null` for warehouse stock, otherwise `YYYY-MM-DD` (which sorts as text). Shipments slip and arrive. */
  eta: string | null
  /** Creation order within the product: the last tie-break of the allocation preference. */
  readonly seq: number
  purchasedQuantity: number
  /** Kept with the batch so that availability never needs the batch's past allocations. */
  allocatedQuantity: number

  constructor(init: {
    ref: string
    sku: string
    eta: string | null
    seq: number
    purchasedQuantity: number
    allocatedQuantity?: number
  }) {
    this.ref = init.ref
    this.sku = init.sku
    this.eta = init.eta
    this.seq = init.seq
    this.purchasedQuantity = init.purchasedQuantity
    this.allocatedQuantity = init.allocatedQuantity ?? 0
  }

  get availableQuantity(): number {
    return this.purchasedQuantity - this.allocatedQuantity
  }

  canAllocate(line: OrderLine): boolean {
    return this.sku === line.sku && this.availableQuantity >= line.qty
  }
}

/** Warehouse stock first, then the earliest eta, then the batch created first. */
export function allocationPreference(a: Batch, b: Batch): number {
  if (a.eta !== b.eta) {
    if (a.eta === null) return -1
    if (b.eta === null) return 1
    return a.eta < b.eta ? -1 : 1
  }
  return a.seq - b.seq
}

/**
 * The aggregate for one sku: every write concerns exactly one product.
 *
 * A product is loaded with all its batches but only with the allocations the operation needs (those of
 * the order lines it concerns, or the latest ones of a batch that shrinks): availability comes from each
 * batch's allocated quantity, so the cost of an operation does not grow with the sku's history.
 */
export class Product {
  readonly sku: string
  versionNumber: number
  readonly batches: Batch[]
  /** The loaded allocations by orderid (the sku is the product's), in the order they were made. */
  readonly allocations: Map<string, Allocation>
  readonly events: DomainEvent[] = []

  constructor(init: { sku: string; versionNumber?: number; batches?: Batch[]; allocations?: Allocation[] }) {
    this.sku = init.sku
    this.versionNumber = init.versionNumber ?? 0
    this.batches = init.batches ?? []
    this.allocations = new Map((init.allocations ?? []).map((a) => [a.line.orderid, a]))
  }

  batch(ref: string): Batch | undefined {
    return this.batches.find((b) => b.ref === ref)
  }

  /** Every batch, in the order allocations prefer them. */
  batchesByPreference(): Batch[] {
    return [...this.batches].sort(allocationPreference)
  }

  /**
   * The batch an allocation of `qty` takes now, or `undefined` when none can: the one rule that both
   * allocating and promising follow. Changes nothing.
   */
  preferredBatch(qty: number): Batch | undefined {
    return this.batchesByPreference().find((b) => b.availableQuantity >= qty)
  }

  /** Adds a batch; the same batch again changes nothing. Returns whether it was new. */
  addBatch(ref: string, qty: number, eta: string | null): boolean {
    const existing = this.batch(ref)
    if (existing) {
      if (existing.eta !== eta || existing.purchasedQuantity !== qty) throw new BatchConflict(ref)
      return false
    }
    const seq = Math.max(0, ...this.batches.map((b) => b.seq)) + 1
    this.batches.push(new Batch({ ref, sku: this.sku, eta, seq, purchasedQuantity: qty }))
    this.versionNumber += 1
    this.events.push({ type: 'BatchCreated', ref, sku: this.sku, qty, eta })
    return true
  }

  /** Returns the ref of the batch that serves the line, or `null` when it is out of stock. */
  allocate(line: OrderLine): string | null {
    const previous = this.allocations.get(line.orderid)
    if (previous) {
      if (previous.line.qty !== line.qty) throw new LineConflict(line.orderid, line.sku, previous.line.qty)
      return previous.batchref
    }
    const batch = this.preferredBatch(line.qty)
    if (!batch) {
      this.events.push({ type: 'OutOfStock', orderid: line.orderid, sku: line.sku, qty: line.qty })
      return null
    }
    batch.allocatedQuantity += line.qty
    this.allocations.set(line.orderid, { line, batchref: batch.ref })
    this.versionNumber += 1
    this.events.push({ type: 'Allocated', ...line, batchref: batch.ref })
    return batch.ref
  }

  deallocate(orderid: string, reason: DeallocationReason = 'requested'): Allocation {
    const allocation = this.allocations.get(orderid)
    if (!allocation) throw new NotAllocated(orderid, this.sku)
    const batch = this.batch(allocation.batchref)
    if (!batch) throw new UnknownBatch(allocation.batchref)
    batch.allocatedQuantity -= allocation.line.qty
    this.allocations.delete(orderid)
    this.versionNumber += 1
    this.events.push({ type: 'Deallocated', ...allocation.line, batchref: batch.ref, reason })
    return allocation
  }

  /**
   * Sets a batch's purchased quantity. When it falls below what is allocated, the most recently
   * allocated lines are deallocated until it fits; their `Deallocated` events ask for reallocation.
   */
  changeBatchQuantity(ref: string, qty: number): Allocation[] {
    const batch = this.batch(ref)
    if (!batch) throw new UnknownBatch(ref)
    if (batch.purchasedQuantity === qty) return []
    batch.purchasedQuantity = qty
    this.versionNumber += 1
    this.events.push({ type: 'BatchQuantityChanged', ref, sku: this.sku, qty })
    const newestFirst = [...this.allocations.values()].filter((a) => a.batchref === ref).reverse()
    const moved: Allocation[] = []
    for (const allocation of newestFirst) {
      if (batch.availableQuantity >= 0) break
      moved.push(this.deallocate(allocation.line.orderid, 'batch-shrunk'))
    }
    if (batch.availableQuantity < 0) {
      throw new Error(`Batch ${ref} is over-allocated but its latest allocations were not loaded`)
    }
    return moved
  }

  /**
   * A shipment slipped (a later date) or arrived (`null`): future allocations prefer the batch by its new
   * eta; the lines already on it stay. The same eta again changes nothing.
   */
  changeBatchEta(ref: string, eta: string | null): void {
    const batch = this.batch(ref)
    if (!batch) throw new UnknownBatch(ref)
    if (batch.eta === eta) return
    batch.eta = eta
    this.versionNumber += 1
    this.events.push({ type: 'BatchEtaChanged', ref, sku: this.sku, eta })
  }
}
