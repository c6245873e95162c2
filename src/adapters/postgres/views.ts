import { type ExpressionBuilder, sql } from 'kysely'
import { coalesce } from '../../service-layer/coalesce.ts'
import type {
  AllocationView,
  BatchView,
  LinesPage,
  LinesQuery,
  LineView,
  ProductSummary,
  ProductView,
  ReadViews,
  StoredEvent,
} from '../../service-layer/ports.ts'
import { selectedOnce } from './compiled-once.ts'
import { type Database, runDurably } from './database.ts'
import { toStoredEvent } from './outbox.ts'
import { ProductViews, waitingQty } from './product-view.ts'
import type { Schema } from './schema.ts'

export class PgViews implements ReadViews {
  readonly #database: Database
  readonly #products: ProductViews
  /**
   * The lines of the orders asked for at the same moment, read in one statement: a request joins the
   * next statement sent after it arrived, so it sees every write committed before it.
   */
  readonly #orders = coalesce<null, string, LineView[]>(
    async (_, orderids) => {
      const rows = await linesOfOrders(this.#database, orderids)
      const byOrder = Map.groupBy(rows, (row) => row.orderid)
      return orderids.map((orderid) => (byOrder.get(orderid) ?? []).map(toLineView))
    },
    { maxGroup: 200 },
  )

  constructor(database: Database) {
    this.#database = database
    this.#products = new ProductViews(database)
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

  order(orderid: string): Promise<LineView[]> {
    return this.#orders(null, orderid)
  }

  async lines(sku: string, { status, limit, after }: LinesQuery): Promise<LinesPage | undefined> {
    const known = await this.#read((db) =>
      db.selectFrom('products').select('sku').where('sku', '=', sku).executeTakeFirst(),
    )
    if (!known) return undefined
    // One line more than the page, to know whether a line follows it.
    const rows = await this.#read((db) => {
      if (status === null || status === 'allocated') return linesOfSku(db, sku, status, limit + 1, after).execute()
      // A literal, not a parameter: the state's partial index then serves prepared statements too.
      return lines(db)
        .select('a.id')
        .where('a.sku', '=', sku)
        .where('a.status', '=', sql.lit(status))
        .where('a.id', '>', after)
        .orderBy('a.id')
        .limit(limit + 1)
        .execute()
    })
    const page = rows.slice(0, limit)
    const next = rows.length > limit ? Number(page.at(-1)?.id) : null
    return { lines: page.map(({ id: _, ...row }) => toLineView(row)), next }
  }

  async batch(ref: string): Promise<BatchView | undefined> {
    const row = await this.#read((db) => this.#batches(db).where('ref', '=', ref).executeTakeFirst())
    return row && toBatchView(row)
  }

  /** Answered from memory while the product is unchanged (a primary-key read checks it). */
  product(sku: string): Promise<ProductView | undefined> {
    return this.#products.read(sku)
  }

  async products(): Promise<ProductSummary[]> {
    const rows = await this.#read((db) =>
      db
        .selectFrom('products as p')
        .leftJoin('batches as b', 'b.sku', 'p.sku')
        .select((eb) => [
          'p.sku',
          sql<number>`coalesce(sum(b.purchased), 0)`.as('purchased'),
          sql<number>`coalesce(sum(b.allocated), 0)`.as('allocated'),
          waitingQty(eb, 'backordered').as('backordered'),
          waitingQty(eb, 'held').as('held'),
        ])
        .groupBy('p.sku')
        .orderBy(sql`coalesce(sum(b.purchased), 0) - coalesce(sum(b.allocated), 0)`)
        .orderBy('p.sku')
        .execute(),
    )
    return rows.map(({ sku, purchased, allocated, backordered, held }) => ({
      sku,
      totals: {
        purchased: Number(purchased),
        allocated: Number(allocated),
        available: Number(purchased) - Number(allocated),
        backordered: Number(backordered ?? 0),
        held: Number(held ?? 0),
      },
    }))
  }

  async lastEventId(): Promise<number> {
    const row = await this.#read((db) =>
      db
        .selectFrom('outbox')
        .select(sql<number>`coalesce(max(id), 0)`.as('id'))
        .where(sql<boolean>`xid < pg_snapshot_xmin(pg_current_snapshot())`)
        .executeTakeFirstOrThrow(),
    )
    return Number(row.id)
  }

  async prunedThrough(): Promise<number> {
    const row = await this.#read((db) => db.selectFrom('outbox_horizon').select('pruned_through').executeTakeFirst())
    return Number(row?.pruned_through ?? 0)
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

  /** Runs `query`; its answer is given once every commit it may have read is on disk. */
  #read<T>(query: (db: Database['db']) => Promise<T>): Promise<T> {
    return runDurably(this.#database, query)
  }
}

/**
 * Lines with their batch's ref and eta. The batch is read by its key for each line (`offset 0` keeps
 * PostgreSQL from turning the lateral read into a plain join): a plan made once per connection,
 * before statistics exist, would otherwise hash all the batches on every run for a handful of lines.
 */
function lines(db: Database['db']) {
  return db
    .selectFrom('allocations as a')
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom('batches')
          .select(['batches.ref', 'batches.eta'])
          .whereRef('batches.id', '=', 'a.batch_id')
          .offset(sql.lit(0))
          .as('b'),
      (join) => join.onTrue(),
    )
    .select(['a.orderid', 'a.sku', 'a.qty', 'a.status', 'b.ref as batchref', 'b.eta', expiresAt])
}

/**
 * A sku's first `limit` lines after line `after`, in every state or allocated only, read batch by batch:
 * at most `limit` from each of the sku's batches (their index gives a batch's lines in order, from
 * anywhere), plus the waiting lines from the queue's index. The cost is the sku's batches times `limit`,
 * never the history of the table. Read by sku and ordered by id instead, PostgreSQL walks the primary key
 * and filters: 200 ms a request with two million lines in the table, whatever the sku. The batch is
 * matched by a range, not by `=`: with `=` the planner takes the batch as fixed and may walk the primary
 * key all the same.
 */
export function linesOfSku(db: Database['db'], sku: string, status: 'allocated' | null, limit: number, after = 0) {
  const inBatches = db
    .selectFrom('batches as b')
    .innerJoinLateral(
      (eb) => {
        const query = eb
          .selectFrom('allocations as a')
          .select(['a.id', 'a.orderid', 'a.sku', 'a.qty', 'a.status', expiresAt])
          .whereRef('a.sku', '=', 'b.sku')
          .whereRef('a.batch_id', '>=', 'b.id')
          .whereRef('a.batch_id', '<=', 'b.id')
          .where('a.id', '>', after)
        return (status ? query.where('a.status', '=', sql.lit(status)) : query)
          .orderBy('a.batch_id')
          .orderBy('a.id')
          .limit(limit)
          .as('a')
      },
      (join) => join.onTrue(),
    )
    .select((eb) => [
      'a.id',
      'a.orderid',
      'a.sku',
      'a.qty',
      'a.status',
      eb.ref('b.ref').$castTo<string | null>().as('batchref'),
      'b.eta',
      'a.expiresAt',
    ])
    .where('b.sku', '=', sku)
  const waiting = db
    .selectFrom('allocations as a')
    .select([
      'a.id',
      'a.orderid',
      'a.sku',
      'a.qty',
      'a.status',
      sql<string | null>`null::text`.as('batchref'),
      sql<string | null>`null::date`.as('eta'),
      expiresAt,
    ])
    .where('a.sku', '=', sku)
    .where('a.status', '=', sql.lit('backordered'))
    .where('a.id', '>', after)
    .orderBy('a.id')
    .limit(limit)
  const both = status ? inBatches : inBatches.unionAll(db.selectFrom(waiting.as('w')).selectAll())
  return db
    .selectFrom(both.as('l'))
    .select(['l.id', 'l.orderid', 'l.sku', 'l.qty', 'l.status', 'l.batchref', 'l.eta', 'l.expiresAt'])
    .orderBy('l.id')
    .limit(limit)
}

const expiresAt = sql<string | null>`to_char(a.expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`.as(
  'expiresAt',
)

const linesOfOrders = selectedOnce(1, (db, orderids: string[]) =>
  lines(db).where('a.orderid', '=', sql<string>`any(${orderids}::text[])`).orderBy('a.id'),
)

function toLineView(
  row: Omit<LineView, 'batchref' | 'eta'> & { batchref: string | null; eta: string | null },
): LineView {
  return { ...row, batchref: row.batchref ?? null, eta: row.eta ?? null }
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
