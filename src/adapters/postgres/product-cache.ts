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

/** The cache as a store uses it. */
export type ProductCacheView = Pick<ProductCache, 'get' | 'set' | 'forget'>

/**
 * The cache as one unit of work sees it. What a transaction reads or writes may never be committed: it
 * rolls back, and another writer may then bring the product to the same version number with other
 * contents, which a write guarded by that number would not see. So within a transaction the entries wait,
 * and enter the shared cache only once it commits; a rollback forgets every sku the transaction touched.
 */
export class UnitOfWorkCache implements ProductCacheView {
  readonly #shared: ProductCache
  /** The entries of the transaction under way (`null`: forgotten); `null` outside a transaction. */
  #pending: Map<string, CachedProduct | null> | null = null

  constructor(shared: ProductCache) {
    this.#shared = shared
  }

  /** A transaction begins: entries wait for its end from now on. */
  begin(): void {
    this.#pending ??= new Map()
  }

  get(sku: string): CachedProduct | undefined {
    if (this.#pending?.has(sku)) return this.#pending.get(sku) ?? undefined
    return this.#shared.get(sku)
  }

  set(sku: string, entry: CachedProduct): void {
    if (this.#pending) this.#pending.set(sku, entry)
    else this.#shared.set(sku, entry)
  }

  forget(sku: string): void {
    this.#shared.forget(sku)
    this.#pending?.set(sku, null)
  }

  /** The transaction committed: what it read and wrote is so. */
  committed(): void {
    for (const [sku, entry] of this.#pending ?? []) {
      if (entry) this.#shared.set(sku, entry)
      else this.#shared.forget(sku)
    }
    this.#pending = null
  }

  /** The transaction did not commit: nothing it saw may be trusted. */
  rolledBack(): void {
    for (const sku of this.#pending?.keys() ?? []) this.#shared.forget(sku)
    this.#pending = null
  }
}
