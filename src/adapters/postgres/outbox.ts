import { sql } from 'kysely'
import type { DomainEvent } from '../../domain/events.ts'
import { coalesce } from '../../service-layer/coalesce.ts'
import type { Outbox, StoredEvent } from '../../service-layer/ports.ts'
import { type Database, inTurn, runDurably } from './database.ts'

export function toStoredEvent(row: { id: number; payload: unknown }): StoredEvent {
  return { id: row.id, event: row.payload as DomainEvent }
}

export class PgOutbox implements Outbox {
  readonly #database: Database
  /**
   * Deliveries are marked together, a few milliseconds after the first: one statement deletes the pending
   * deliveries of that moment instead of a commit each. A mark lost in a crash only means the event is
   * delivered again, which its handlers allow.
   */
  readonly #mark = coalesce<null, number, undefined>(
    async (_, ids) => {
      await inTurn(this.#database, (db) =>
        db.deleteFrom('pending_deliveries').where('id', '=', sql<number>`any(${ids}::bigint[])`).execute(),
      )
      return ids.map(() => undefined)
    },
    { maxGroup: 1000, lingerMs: 10 },
  )
  readonly #marking = new Set<Promise<void>>()

  constructor(database: Database) {
    this.#database = database
  }

  markDelivered(id: number): Promise<void> {
    const marked = this.#mark(null, id)
    this.#marking.add(marked)
    const forget = () => this.#marking.delete(marked)
    marked.then(forget, forget)
    return marked
  }

  /** Waits for the marks not yet written, before the database closes. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.#marking])
  }

  /** Claims the events due; resolves once the commits that wrote them are on disk, so none goes out before. */
  async claimDue(limit: number): Promise<StoredEvent[]> {
    const rows = await runDurably(this.#database, (db) =>
      db
        .with('claimed', (db) =>
          db
            .updateTable('pending_deliveries')
            .set({
              attempts: sql`attempts + 1`,
              due_at: sql`now() + least(interval '5 seconds' * power(2, attempts), interval '10 minutes')`,
            })
            .where(
              'id',
              'in',
              db
                .selectFrom('pending_deliveries')
                .select('id')
                .where('due_at', '<=', sql<Date>`now()`)
                .orderBy('due_at')
                .orderBy('id')
                .limit(limit)
                .forUpdate()
                .skipLocked(),
            )
            .returning('id'),
        )
        .selectFrom('outbox')
        .select(['outbox.id', 'outbox.payload'])
        .where('outbox.id', 'in', (db) => db.selectFrom('claimed').select('claimed.id'))
        .orderBy('outbox.id')
        .execute(),
    )
    return rows.map(toStoredEvent)
  }
}
