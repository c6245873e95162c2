import { sql } from 'kysely'

export type BatchRow = Readonly<{ id: number; ref: string; eta: string | null; purchased: number; allocated: number }>

/**
 * The batches of the statement's product `p`, in id order, as the cache keeps them: read so by a load and
 * by a save that fails its guard.
 */
export const cachedBatches = sql<BatchRow[]>`(
  select coalesce(json_agg(json_build_object(
    'id', b.id, 'ref', b.ref, 'eta', b.eta, 'purchased', b.purchased, 'allocated', b.allocated
  ) order by b.id), '[]')
  from batches b where b.sku = p.sku
)`

/** A product as this process last read or wrote it: its version and its batches. */
export type CachedProduct = Readonly<{ versionNumber: number; batches: readonly BatchRow[] }>

/**
 * The products this process used last, by sku, the least recently used dropped first. An entry is never
 * trusted: a write from it is guarded by its version, so a stale entry costs a retry, not a wrong answer.
 */
export class ProductCache {
  readonly #entries = new Map<string, CachedProduct>()
  readonly #capacity: number

  constructor(capacity = 10_000) {
    this.#capacity = capacity
  }

  get(sku: string): CachedProduct | undefined {
    const entry = this.#entries.get(sku)
    if (entry) this.set(sku, entry)
    return entry
  }

  set(sku: string, entry: CachedProduct): void {
    this.#entries.delete(sku)
    this.#entries.set(sku, entry)
    if (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
  }

  forget(sku: string): void {
    this.#entries.delete(sku)
  }
}
