import type { ControlledTransaction } from 'kysely'
import {
  ConcurrencyConflict,
  type StartUnitOfWork,
  type StoredEvent,
  type UnitOfWork,
} from '../../service-layer/ports.ts'
import { TrackingRepository } from '../../service-layer/tracking-repository.ts'
import type { Database } from './database.ts'
import { saveNewBatches } from './new-batches.ts'
import { ProductCache, UnitOfWorkCache } from './product-cache.ts'
import { type Executor, PgProductStore } from './repository.ts'
import type { Schema } from './schema.ts'

/** serialization_failure, deadlock_detected, unique_violation: a concurrent writer got there first. */
const RACE_CODES = new Set(['40001', '40P01', '23505'])

/**
 * Optimistic by default: reads outside any transaction, then one guarded statement writes everything
 * (a transaction only when a new product or batch needs several). A retry after a lost race locks the
 * product instead, so a hot sku queues rather than failing again.
 */
export function pgUnitOfWork(database: Database): StartUnitOfWork {
  const cache = new ProductCache()
  return async ({ contended = false } = {}) => new PgUnitOfWork(database, contended, cache)
}

class PgUnitOfWork implements UnitOfWork {
  readonly products: TrackingRepository
  readonly #database: Database
  readonly #store: PgProductStore
  readonly #messages: string[] = []
  #acquired: Promise<void> | null = null
  #release: () => void = () => {}
  #trx: Promise<ControlledTransaction<Schema>> | null = null
  readonly #cache: UnitOfWorkCache
  #committed: StoredEvent[] = []

  constructor(database: Database, contended: boolean, cache: ProductCache) {
    this.#database = database
    this.#cache = new UnitOfWorkCache(cache)
    this.#store = new PgProductStore(
      () => (contended ? this.#transaction() : this.#connection()),
      contended,
      this.#cache,
    )
    this.products = new TrackingRepository(this.#store)
  }

  /** The database, with a turn on it for this unit of work (`Database.acquire`). */
  async #connection(): Promise<Executor> {
    this.#acquired ??= this.#take(() => this.#database.acquire())
    await this.#acquired
    return this.#database.db
  }

  /**
   * A transaction, with the database to itself where it has a single connection. A turn taken before for
   * reads is given back first: what they read is checked by the guarded save, as without a transaction.
   */
  #transaction(): Promise<ControlledTransaction<Schema>> {
    this.#trx ??= (async () => {
      if (this.#acquired) {
        await this.#acquired
        this.#release()
      }
      this.#acquired = this.#take(() => this.#database.acquireExclusive())
      await this.#acquired
      this.#cache.begin()
      return this.#database.db.startTransaction().execute()
    })()
    return this.#trx
  }

  async #take(turn: () => Promise<() => void>): Promise<void> {
    this.#release = await turn()
  }

  async claimMessage(messageId: string): Promise<boolean> {
    const db = await (this.#trx ?? this.#connection())
    const handled = await db.selectFrom('handled_messages').select('id').where('id', '=', messageId).executeTakeFirst()
    if (!handled) this.#messages.push(messageId)
    return !handled
  }

  async commit(): Promise<void> {
    const products = [...this.products.seen.values()]
    try {
      if (products.length === 0) {
        if (this.#messages.length > 0) await this.#insertMessages()
        return
      }
      const several = products.length > 1 || products.some((p) => this.#store.needsTransaction(p))
      const db = several || this.#trx ? await this.#transaction() : await this.#connection()
      // Many new batches (a bulk import) are written a table at a time rather than a product at a time.
      const bulk = this.#messages.length === 0 ? products.flatMap((p) => this.#store.newBatchesOf(p) ?? []) : []
      const inBulk = new Set(bulk.reduce((n, c) => n + c.newRefs.size, 0) > 1 ? bulk.map((c) => c.product) : [])
      const stored = inBulk.size > 0 ? await saveNewBatches(bulk, db) : []
      for (const [i, product] of products.filter((p) => !inBulk.has(p)).entries()) {
        stored.push(...(await this.#store.save(product, i === 0 ? this.#messages.splice(0) : [], db)))
      }
      if (this.#trx) await this.#commitTransaction()
      this.#committed.push(...stored)
    } catch (error) {
      if (isRace(error)) throw new ConcurrencyConflict('A concurrent transaction changed the product', { cause: error })
      throw error
    }
  }

  async #insertMessages(): Promise<void> {
    const db = await (this.#trx ?? this.#connection())
    await db
      .insertInto('handled_messages')
      .values(this.#messages.splice(0).map((id) => ({ id })))
      .execute()
    if (this.#trx) await this.#commitTransaction()
  }

  async #commitTransaction(): Promise<void> {
    await (await this.#trx)?.commit().execute()
    this.#cache.committed()
  }

  collectNewEvents(): StoredEvent[] {
    return this.#committed.splice(0)
  }

  async close(): Promise<void> {
    try {
      const trx = await this.#trx
      if (trx && !trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute()
    } finally {
      // Whatever a transaction that did not commit read or wrote leaves the cache (none if it committed).
      this.#cache.rolledBack()
      // A turn still on its way is given back once it comes: kept, it would hold off every transaction.
      await this.#acquired?.catch(() => {})
      this.#release()
    }
    // Whatever the unit of work committed, or read of others' commits, is on disk before it is acted on.
    if (this.#acquired) await this.#database.durable()
  }
}

function isRace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && RACE_CODES.has(code)
}
