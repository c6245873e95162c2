import { BatchConflict, HoldWithBackorder, LineConflict, NotAllocated, UnknownBatch } from './errors.ts'
import type { DeallocationReason, DomainEvent, HoldReleaseReason } from './events.ts'

export type OrderLine = Readonly<{ orderid: string; sku: string; qty: number }>

export type LineStatus = 'allocated' | 'held' | 'backordered'

/**
 * An accepted line in its one state: `batchref` is `null` only when backordered, `expiresAt` (epoch
 * milliseconds) is set only when held. `accepted` orders lines by first acceptance (the backorder queue);
 * `placed` orders the lines of a batch by when they were put on it (a shrinking batch loses the latest
 * first). Either is `null` for what is not stored yet, which is newer than everything stored.
 */
export type LineState = Readonly<{
  line: OrderLine
  status: LineStatus
  batchref: string | null
  expiresAt: number | null
  accepted: number | null
  placed: number | null
}>

/** What an allocation request came to; `out_of_stock` lines are not kept. */
export type LineOutcome = Readonly<{
  status: LineStatus | 'out_of_stock'
  batchref: string | null
  expiresAt: number | null
}>

export type AllocateOptions = Readonly<{
  backorder?: boolean
  holdSeconds?: number | null
  /** The time of the request, epoch milliseconds: holds expire relative to it. */
  now?: number
}>

export class Batch {
  readonly ref: string
  readonly sku: string
  /** `null` for warehouse stock, otherwise `YYYY-MM-DD` (which sorts as text). Shipments slip and arrive. */
  eta: string | null
  /** Creation order within the product: the last tie-break of the allocation preference. */
  readonly seq: number
  purchasedQuantity: number
  /** Allocated and held lines together; kept with the batch so that availability never reads its lines. */
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

/** Oldest acceptance first; lines not stored yet come last, in the order they were made. */
export function acceptanceOrder(a: LineState, b: LineState): number {
  return (a.accepted ?? Number.POSITIVE_INFINITY) - (b.accepted ?? Number.POSITIVE_INFINITY) || 0
}

/** Placed on their batch earliest first, then by acceptance; lines placed by this change come last. */
function placementOrder(a: LineState, b: LineState): number {
  return (a.placed ?? Number.POSITIVE_INFINITY) - (b.placed ?? Number.POSITIVE_INFINITY) || acceptanceOrder(a, b)
}

/**
 * The aggregate for one sku: every write concerns exactly one product.
 *
 * A product is loaded with all its batches but only with the lines the operation needs (those of the
 * orders it concerns, the latest ones of a batch that shrinks, the waiting lines that can fit once it
 * gained stock): availability comes from each batch's allocated quantity, so the cost of an operation
 * does not grow with the sku's history.
 */
export class Product {
  readonly sku: string
  versionNumber: number
  readonly batches: Batch[]
  /** The loaded lines by orderid (the sku is the product's), in any state. */
  readonly lines: Map<string, LineState>
  readonly events: DomainEvent[] = []
  /**
   * Set when available stock grew (a batch added or raised, a line cancelled, a hold released): waiting
   * lines that fit must then be loaded and given to `fillBackorders`, before the change is saved.
   */
  gainedStock = false

  constructor(init: { sku: string; versionNumber?: number; batches?: Batch[]; lines?: LineState[] }) {
    this.sku = init.sku
    this.versionNumber = init.versionNumber ?? 0
    this.batches = init.batches ?? []
    this.lines = new Map((init.lines ?? []).map((l) => [l.line.orderid, l]))
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

  /** The most any one batch can take now: no waiting line larger than this can be filled. */
  get largestAvailable(): number {
    return Math.max(0, ...this.batches.map((b) => b.availableQuantity))
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
    this.gainedStock = true
    this.events.push({ type: 'BatchCreated', ref, sku: this.sku, qty, eta })
    return true
  }

  /**
   * Allocates a line, holds it (`holdSeconds`) or, with `backorder`, keeps it waiting when no batch can
   * take it. A line sent again answers its state: a live hold is confirmed (no `holdSeconds`) or
   * extended, never shortened; a hold past its expiry is released and the line allocated anew.
   */
  allocate(line: OrderLine, { backorder = false, holdSeconds = null, now = 0 }: AllocateOptions = {}): LineOutcome {
    if (backorder && holdSeconds !== null) throw new HoldWithBackorder(line.orderid, line.sku)
    let existing = this.lines.get(line.orderid)
    let accepted: number | null = null
    if (existing?.status === 'held' && (existing.expiresAt ?? 0) <= now) {
      accepted = existing.accepted
      this.#endHold(existing, 'expired')
      existing = undefined
    }
    if (!existing) return this.#place(line, { backorder, holdSeconds, now }, accepted)
    if (existing.line.qty !== line.qty) throw new LineConflict(line.orderid, line.sku, existing.line.qty)
    if (existing.status !== 'held') return existing
    const batchref = existing.batchref as string
    if (holdSeconds === null) {
      this.#set({ ...existing, status: 'allocated', expiresAt: null })
      this.events.push({ type: 'Allocated', ...existing.line, batchref })
    } else if (now + holdSeconds * 1000 > (existing.expiresAt ?? 0)) {
      const expiresAt = now + holdSeconds * 1000
      this.#set({ ...existing, expiresAt })
      this.events.push({ type: 'Held', ...existing.line, batchref, expiresAt: iso(expiresAt) })
    }
    return this.lines.get(line.orderid) as LineState
  }

  /** Ends a line in any state; throws `NotAllocated` when the product has no such line. */
  cancel(orderid: string): LineState {
    const existing = this.lines.get(orderid)
    if (!existing) throw new NotAllocated(orderid, this.sku)
    if (existing.status === 'held') this.#endHold(existing, 'cancelled')
    else if (existing.status === 'allocated') this.#deallocate(existing, 'requested')
    else {
      this.lines.delete(orderid)
      this.versionNumber += 1
      this.events.push({ type: 'BackorderCancelled', ...existing.line })
    }
    return existing
  }

  /** Releases the line's hold if it is still held and past its expiry at `now`; returns whether it did. */
  releaseExpiredHold(orderid: string, now: number): boolean {
    const existing = this.lines.get(orderid)
    if (existing?.status !== 'held' || (existing.expiresAt ?? 0) > now) return false
    this.#endHold(existing, 'expired')
    return true
  }

  /**
   * Allocates the loaded waiting lines that fit a batch, oldest first, passing over those that fit none.
   * With `through`, only lines accepted up to it: the waiting lines after it are not all loaded yet.
   */
  fillBackorders(through: number | null = null): void {
    const waiting = [...this.lines.values()]
      .filter((l) => l.status === 'backordered' && (through === null || (l.accepted ?? Infinity) <= through))
      .sort(acceptanceOrder)
    for (const line of waiting) {
      const batch = this.preferredBatch(line.line.qty)
      if (!batch) continue
      batch.allocatedQuantity += line.line.qty
      this.#set({ ...line, status: 'allocated', batchref: batch.ref, placed: null })
      this.events.push({ type: 'Allocated', ...line.line, batchref: batch.ref })
    }
  }

  /**
   * Sets a batch's purchased quantity. When it falls below what is allocated, the lines most recently
   * placed on it leave until it fits; each goes to the best batch that can take it, or waits as a
   * backorder (a held line keeps its expiry elsewhere, or is released). A line taken off that the room
   * left can take back, where no better batch can, stays: it did not need to leave. Returns the lines
   * that left, as they were, newest first.
   */
  changeBatchQuantity(ref: string, qty: number): LineState[] {
    const batch = this.batch(ref)
    if (!batch) throw new UnknownBatch(ref)
    if (batch.purchasedQuantity === qty) return []
    if (qty > batch.purchasedQuantity) this.gainedStock = true
    batch.purchasedQuantity = qty
    this.versionNumber += 1
    this.events.push({ type: 'BatchQuantityChanged', ref, sku: this.sku, qty })
    const newestFirst = [...this.lines.values()]
      .filter((l) => l.batchref === ref)
      .reverse()
      .sort((a, b) => placementOrder(b, a))
    const moved: LineState[] = []
    for (const line of newestFirst) {
      if (batch.availableQuantity >= 0) break
      batch.allocatedQuantity -= line.line.qty
      moved.push(line)
    }
    if (batch.availableQuantity < 0) {
      throw new Error(`Batch ${ref} is over-allocated but its latest lines were not loaded`)
    }
    const stayed = new Set<LineState>()
    for (const line of [...moved].sort(acceptanceOrder)) {
      if (this.preferredBatch(line.line.qty) === batch) {
        batch.allocatedQuantity += line.line.qty
        stayed.add(line)
      } else this.#move(line, ref)
    }
    const left = moved.filter((line) => !stayed.has(line))
    // The batch may keep some room, less than the lines taken off but enough for a smaller waiting line.
    if (left.length > 0 && batch.availableQuantity > 0) this.gainedStock = true
    return left
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

  /** A line that left shrunk batch `from` (its quantity already taken off) goes where it can. */
  #move(line: LineState, from: string): void {
    const target = this.preferredBatch(line.line.qty)
    if (line.status === 'held') {
      if (!target) {
        this.lines.delete(line.line.orderid)
        this.events.push({ type: 'HoldReleased', ...line.line, batchref: from, reason: 'batch-shrunk' })
        return
      }
      target.allocatedQuantity += line.line.qty
      this.#set({ ...line, batchref: target.ref, placed: null })
      this.events.push({
        type: 'Held',
        ...line.line,
        batchref: target.ref,
        expiresAt: iso(line.expiresAt ?? 0),
      })
      return
    }
    this.events.push({ type: 'Deallocated', ...line.line, batchref: from, reason: 'batch-shrunk' })
    if (target) {
      target.allocatedQuantity += line.line.qty
      this.#set({ ...line, batchref: target.ref, placed: null })
      this.events.push({ type: 'Allocated', ...line.line, batchref: target.ref })
    } else {
      this.#set({ ...line, status: 'backordered', batchref: null, expiresAt: null })
      this.events.push({ type: 'Backordered', ...line.line })
      this.events.push({ type: 'OutOfStock', ...line.line, backordered: true })
    }
  }

  #place(
    line: OrderLine,
    options: Readonly<{ backorder: boolean; holdSeconds: number | null; now: number }>,
    accepted: number | null,
  ): LineOutcome {
    const batch = this.preferredBatch(line.qty)
    if (!batch) {
      if (!options.backorder) {
        this.events.push({ type: 'OutOfStock', ...line, backordered: false })
        return { status: 'out_of_stock', batchref: null, expiresAt: null }
      }
      this.#set({ line, status: 'backordered', batchref: null, expiresAt: null, accepted, placed: null })
      this.events.push({ type: 'Backordered', ...line })
      this.events.push({ type: 'OutOfStock', ...line, backordered: true })
      return this.lines.get(line.orderid) as LineState
    }
    batch.allocatedQuantity += line.qty
    if (options.holdSeconds === null) {
      this.#set({ line, status: 'allocated', batchref: batch.ref, expiresAt: null, accepted, placed: null })
      this.events.push({ type: 'Allocated', ...line, batchref: batch.ref })
    } else {
      const expiresAt = options.now + options.holdSeconds * 1000
      this.#set({ line, status: 'held', batchref: batch.ref, expiresAt, accepted, placed: null })
      this.events.push({ type: 'Held', ...line, batchref: batch.ref, expiresAt: iso(expiresAt) })
    }
    return this.lines.get(line.orderid) as LineState
  }

  #endHold(line: LineState, reason: HoldReleaseReason): void {
    const batchref = line.batchref as string
    this.#takeOff(line)
    this.events.push({ type: 'HoldReleased', ...line.line, batchref, reason })
  }

  #deallocate(line: LineState, reason: DeallocationReason): void {
    this.#takeOff(line)
    this.events.push({ type: 'Deallocated', ...line.line, batchref: line.batchref as string, reason })
  }

  /** Gives a served line's quantity back to its batch and forgets the line. */
  #takeOff(line: LineState): void {
    const batch = this.batch(line.batchref ?? '')
    if (!batch) throw new UnknownBatch(line.batchref ?? '')
    batch.allocatedQuantity -= line.line.qty
    this.lines.delete(line.line.orderid)
    this.versionNumber += 1
    this.gainedStock = true
  }

  #set(line: LineState): void {
    this.lines.set(line.line.orderid, line)
    this.versionNumber += 1
  }
}

function iso(epochMs: number): string {
  return new Date(epochMs).toISOString()
}
