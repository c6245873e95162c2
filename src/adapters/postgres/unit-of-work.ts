import type { ControlledTransaction } from 'kysely'
import {
  ConcurrencyConflict,
  type StartUnitOfWork,
  type StoredEvent,
  type UnitOfWork,
} from '../../service-layer/ports.ts'
import { TrackingRepository } from '../../service-layer/tracking-repository.ts'
import type { Database } from './database.ts'
import { appendEvents } from './outbox.ts'
import { PgProductStore } from './repository.ts'
import type { Schema } from './schema.ts'

/** serialization_failure, deadlock_detected, unique_violation: a concurrent writer got there first. */
const RACE_CODES = new Set(['40001', '40P01', '23505'])

export function pgUnitOfWork(database: Database): StartUnitOfWork {
  return async () => {
    const release = await database.acquire()
    try {
      const trx = await database.db.startTransaction().execute()
      return new PgUnitOfWork(trx, release)
    } catch (error) {
      release()
      throw error
    }
  }
}

class PgUnitOfWork implements UnitOfWork {
  readonly products: TrackingRepository
  readonly #trx: ControlledTransaction<Schema>
  readonly #store: PgProductStore
  readonly #release: () => void
  #committed: StoredEvent[] = []

  constructor(trx: ControlledTransaction<Schema>, release: () => void) {
    this.#trx = trx
    this.#store = new PgProductStore(trx)
    this.products = new TrackingRepository(this.#store)
    this.#release = release
  }

  async commit(): Promise<void> {
    try {
      const events = []
      for (const product of this.products.seen.values()) {
        await this.#store.save(product)
        events.push(...product.events.splice(0))
      }
      const stored = await appendEvents(this.#trx, events)
      await this.#trx.commit().execute()
      this.#committed.push(...stored)
    } catch (error) {
      if (isRace(error)) throw new ConcurrencyConflict('A concurrent transaction changed the product', { cause: error })
      throw error
    }
  }

  collectNewEvents(): StoredEvent[] {
    return this.#committed.splice(0)
  }

  async close(): Promise<void> {
    try {
      if (!this.#trx.isCommitted && !this.#trx.isRolledBack) await this.#trx.rollback().execute()
    } finally {
      this.#release()
    }
  }
}

function isRace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && RACE_CODES.has(code)
}
