import { type Kysely, sql } from 'kysely'
import type { DomainEvent } from '../../domain/events.ts'
import type { Outbox, StoredEvent } from '../../service-layer/ports.ts'
import type { Database } from './database.ts'
import type { Schema } from './schema.ts'

/** Writes events in the caller's transaction; their ids come back in the order given. */
export async function appendEvents(db: Kysely<Schema>, events: readonly DomainEvent[]): Promise<StoredEvent[]> {
  if (events.length === 0) return []
  const rows = await db
    .insertInto('outbox')
    .values(events.map((event) => ({ sku: event.sku, type: event.type, payload: JSON.stringify(event) })))
    .returning('id')
    .execute()
  return rows.map((row, i) => ({ id: row.id, event: events[i] as DomainEvent }))
}

export function toStoredEvent(row: { id: number; payload: unknown }): StoredEvent {
  return { id: row.id, event: row.payload as DomainEvent }
}

export class PgOutbox implements Outbox {
  readonly #database: Database

  constructor(database: Database) {
    this.#database = database
  }

  async markDelivered(id: number): Promise<void> {
    const release = await this.#database.acquire()
    try {
      await this.#database.db.updateTable('outbox').set({ delivered_at: sql`now()` }).where('id', '=', id).execute()
    } finally {
      release()
    }
  }

  async undelivered(limit: number, olderThanMs: number): Promise<StoredEvent[]> {
    const release = await this.#database.acquire()
    try {
      const rows = await this.#database.db
        .selectFrom('outbox')
        .select(['id', 'payload'])
        .where('delivered_at', 'is', null)
        .where('created_at', '<', sql<Date>`now() - make_interval(secs => ${olderThanMs / 1000})`)
        .orderBy('id')
        .limit(limit)
        .execute()
      return rows.map(toStoredEvent)
    } finally {
      release()
    }
  }
}
