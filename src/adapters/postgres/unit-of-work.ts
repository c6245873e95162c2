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
  return async () => new PgUnitOfWork(database)
}

/** The transaction begins at the first query, so a handler that never touches the database costs nothing. */
class PgUnitOfWork implements UnitOfWork {
  readonly products: TrackingRepository
  readonly #database: Database
  readonly #store: PgProductStore
  #trx: Promise<ControlledTransaction<Schema>> | null = null
  #release: () => void = () => {}
  #committed: StoredEvent[] = []
  readonly #messages: string[] = []

  constructor(database: Database) {
    this.#database = database
    this.#store = new PgProductStore(() => this.#transaction())
    this.products = new TrackingRepository(this.#store)
  }

  #transaction(): Promise<ControlledTransaction<Schema>> {
    this.#trx ??= (async () => {
      this.#release = await this.#database.acquire()
      return this.#database.db.startTransaction().execute()
    })()
    return this.#trx
  }

  async claimMessage(messageId: string): Promise<boolean> {
    const trx = await this.#transaction()
    const handled = await trx.selectFrom('handled_messages').select('id').where('id', '=', messageId).executeTakeFirst()
    if (!handled) this.#messages.push(messageId)
    return !handled
  }

  async commit(): Promise<void> {
    if (this.products.seen.size === 0 && this.#messages.length === 0) return
    try {
      const trx = await this.#transaction()
      const events = []
      for (const product of this.products.seen.values()) {
        await this.#store.save(product)
        events.push(...product.events.splice(0))
      }
      const stored = await appendEvents(trx, events)
      if (this.#messages.length > 0) {
        await trx
          .insertInto('handled_messages')
          .values(this.#messages.map((id) => ({ id })))
          .execute()
      }
      await trx.commit().execute()
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
      const trx = await this.#trx
      if (trx && !trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute()
    } finally {
      this.#release()
    }
  }
}

function isRace(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && RACE_CODES.has(code)
}
