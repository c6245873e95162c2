import { sql } from 'kysely'
import type {
  AllocationView,
  BatchView,
  LineView,
  ProductView,
  ReadViews,
  StoredEvent,
} from '../../service-layer/ports.ts'
import type { Database } from './database.ts'
import { toStoredEvent } from './outbox.ts'

export class PgViews implements ReadViews {
  readonly #database: Database

  constructor(database: Database) {
    this.#database = database
  }

  allocations(orderid: string): Promise<AllocationView[]> {
    return this.#read((db) =>
      db
        .selectFrom('allocations as a')
        .innerJoin('batches as b', 'b.id', 'a.batch_id')
        .select(['a.sku', 'b.ref as batchref', 'a.qty'])
        .where('a.orderid', '=', orderid)
        .where('a.status', '=', 'allocated')
        .orderBy('a.id')
        .execute(),
    )
  }

  async order(orderid: string): Promise<LineView[]> {
    const rows = await this.#read((db) =>
      db
        .selectFrom('allocations as a')
        .leftJoin('batches as b', 'b.id', 'a.batch_id')
        .select([
          'a.orderid',
          'a.sku',
          'a.qty',
          'a.status',
          'b.ref as batchref',
          'b.eta',
          sql<string | null>`to_char(a.expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as('expiresAt'),
        ])
        .where('a.orderid', '=', orderid)
        .orderBy('a.id')
        .execute(),
    )
    return rows.map((row) => ({ ...row, batchref: row.batchref ?? null, eta: row.eta ?? null }))
  }

  async batch(ref: string): Promise<BatchView | undefined> {
    const row = await this.#read((db) => this.#batches(db).where('ref', '=', ref).executeTakeFirst())
    return row && toBatchView(row)
  }

  async product(sku: string): Promise<ProductView | undefined> {
    const rows = await this.#read((db) =>
      this.#batches(db).where('sku', '=', sku).orderBy(sql`eta asc nulls first`).orderBy('id').execute(),
    )
    if (rows.length === 0) return undefined
    // One sum per partial index (waiting lines, holds): neither reads the sku's allocated history.
    const waiting = await this.#read((db) =>
      db
        .selectNoFrom((eb) => [
          eb
            .selectFrom('allocations')
            .select(sql<number>`coalesce(sum(qty), 0)::int`.as('qty'))
            .where('sku', '=', sku)
            .where('status', '=', sql.lit('backordered'))
            .as('backordered'),
          eb
            .selectFrom('allocations')
            .select(sql<number>`coalesce(sum(qty), 0)::int`.as('qty'))
            .where('sku', '=', sku)
            .where('status', '=', sql.lit('held'))
            .as('held'),
        ])
        .executeTakeFirstOrThrow(),
    )
    const batches = rows.map(toBatchView)
    const sum = (pick: (b: BatchView) => number) => batches.reduce((total, b) => total + pick(b), 0)
    return {
      sku,
      batches,
      totals: {
        purchased: sum((b) => b.purchased),
        allocated: sum((b) => b.allocated),
        available: sum((b) => b.available),
        backordered: Number(waiting.backordered ?? 0),
        held: Number(waiting.held ?? 0),
      },
    }
  }

  async events(after: number, limit: number): Promise<StoredEvent[]> {
    const rows = await this.#read((db) =>
      db
        .selectFrom('outbox')
        .select(['id', 'payload'])
        .where('id', '>', after)
        // Ids are taken before commit: hide events while an older transaction could still add one below them.
        .where(sql<boolean>`xid < pg_snapshot_xmin(pg_current_snapshot())`)
        .orderBy('id')
        .limit(limit)
        .execute(),
    )
    return rows.map(toStoredEvent)
  }

  #batches(db: Database['db']) {
    return db.selectFrom('batches').select(['id', 'ref', 'sku', 'eta', 'purchased', 'allocated'])
  }

  async #read<T>(query: (db: Database['db']) => Promise<T>): Promise<T> {
    const release = await this.#database.acquire()
    try {
      return await query(this.#database.db)
    } finally {
      release()
    }
  }
}

function toBatchView(row: {
  ref: string
  sku: string
  eta: string | null
  purchased: number
  allocated: number
}): BatchView {
  const { ref, sku, eta, purchased, allocated } = row
  return { ref, sku, eta, purchased, allocated, available: purchased - allocated }
}
