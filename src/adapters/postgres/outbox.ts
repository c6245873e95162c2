import { type RawBuilder, sql } from 'kysely'
import type { DomainEvent } from '../../domain/events.ts'
import { coalesce } from '../../service-layer/coalesce.ts'
import type { Outbox, StoredEvent } from '../../service-layer/ports.ts'
import { type Database, inTurn, runDurably } from './database.ts'

export function toStoredEvent(row: { id: number; payload: unknown }): StoredEvent {
  return { id: row.id, event: row.payload as DomainEvent }
}

/** How long a delivery waits after a claim with `attempts` failed attempts before it. */
const backoff = (attempts: RawBuilder<unknown>) =>
  sql`least(interval '5 seconds' * power(2, ${attempts}), interval '10 minutes')`
const BACKOFF_BEFORE = backoff(sql`attempts - 1`)
const SHORTEST_LEASE = sql`interval '5 seconds'`

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

  async retryNow(): Promise<void> {
    // A claim set `due_at` to its time plus the backoff of the attempts before it; a claim is leased for at
    // least the shortest backoff. Rows locked by a claim or a mark under way are theirs: skipped.
    await inTurn(this.#database, (db) =>
      db
        .updateTable('pending_deliveries')
        .set({ due_at: sql`greatest(now(), due_at - ${BACKOFF_BEFORE} + ${SHORTEST_LEASE})` })
        .where(
          'id',
          'in',
          db
            .selectFrom('pending_deliveries')
            .select('id')
            .where('due_at', '>', sql<Date>`now()`)
            .where('attempts', '>', 0)
            .forUpdate()
            .skipLocked(),
        )
        .execute(),
    )
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
              due_at: sql`now() + ${backoff(sql`attempts`)}`,
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
