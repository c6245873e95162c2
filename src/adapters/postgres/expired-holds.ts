import { sql } from 'kysely'
import type { ExpiredHolds } from '../../service-layer/ports.ts'
import { type Database, inTurn } from './database.ts'

/**
 * Reads the partial index of holds by expiry: the cost is the holds due, never the table. The state is
 * a literal, not a parameter, so that a prepared statement's generic plan can still use the index.
 */
export class PgExpiredHolds implements ExpiredHolds {
  readonly #database: Database

  constructor(database: Database) {
    this.#database = database
  }

  async due(now: number, limit: number): Promise<Array<{ orderid: string; sku: string }>> {
    return inTurn(this.#database, (db) =>
      db
        .selectFrom('allocations')
        .select(['orderid', 'sku'])
        .where('status', '=', sql.lit('held'))
        .where('expires_at', '<=', sql<Date>`to_timestamp(${now / 1000})`)
        .orderBy('expires_at')
        .limit(limit)
        .execute(),
    )
  }
}
