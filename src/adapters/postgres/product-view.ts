import { type ExpressionBuilder, sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import { coalesce } from '../../service-layer/coalesce.ts'
import type { BatchView, ProductView } from '../../service-layer/ports.ts'
import { selectedOnce } from './compiled-once.ts'
import type { Database } from './database.ts'
import type { Schema } from './schema.ts'

type Stamp = Readonly<{ version: number; xmin: string }>
type Entry = Readonly<{ stamp: Stamp; view: ProductView }>

/**
 * `GET /products/{sku}` answered from memory when the product row is as it was when the view was
 * read: every write of a sku's batches or lines moves its product's version in the same transaction
 * (the optimistic lock of every save), and any update of the row gives it a new `xmin`. So the check
 * is a primary-key read per request, and a change committed by any process is seen at once.
 * The checks of concurrent requests go together in one statement: a request waits for the next
 * statement sent after it arrived, never joins one already sent, so it sees every earlier commit.
 */
export class ProductViews {
  readonly #entries = new Map<string, Entry>()
  readonly #capacity: number
  readonly #database: Database
  readonly #stamp: (sku: string) => Promise<Stamp | undefined>

  constructor(database: Database, capacity = 10_000) {
    this.#database = database
    this.#capacity = capacity
    const stamps = coalesce<null, string, Stamp | undefined>(
      async (_, skus) => {
        const rows = await stampsOf(database, skus)
        const bySku = new Map(rows.map((r) => [r.sku, r]))
        return skus.map((sku) => bySku.get(sku))
      },
      { maxGroup: 200 },
    )
    this.#stamp = (sku) => stamps(null, sku)
  }

  async read(sku: string): Promise<ProductView | undefined> {
    const cached = this.#entries.get(sku)
    if (cached) {
      const stamp = await this.#stamp(sku)
      if (stamp?.version === cached.stamp.version && stamp.xmin === cached.stamp.xmin) return cached.view
    }
    const [row] = await viewOf(this.#database, sku)
    if (!row || row.batches.length === 0) {
      this.#entries.delete(sku)
      return undefined
    }
    const batches: BatchView[] = row.batches.map((b) => ({ ...b, sku, available: b.purchased - b.allocated }))
    const sum = (pick: (b: BatchView) => number) => batches.reduce((total, b) => total + pick(b), 0)
    const view: ProductView = {
      sku,
      batches,
      totals: {
        purchased: sum((b) => b.purchased),
        allocated: sum((b) => b.allocated),
        available: sum((b) => b.available),
        backordered: Number(row.backordered ?? 0),
        held: Number(row.held ?? 0),
      },
    }
    this.#remember(sku, { stamp: { version: row.version, xmin: row.xmin }, view })
    return view
  }

  #remember(sku: string, entry: Entry): void {
    this.#entries.delete(sku)
    this.#entries.set(sku, entry)
    if (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
  }
}

const stampsOf = selectedOnce(1, (db, skus: string[]) =>
  db
    .selectFrom('products')
    .select(['sku', 'version_number as version', sql<string>`xmin::text`.as('xmin')])
    .where('sku', '=', sql<string>`any(${skus}::text[])`),
)

const viewOf = selectedOnce(1, (db, sku: string) =>
  db
    .selectFrom('products as p')
    .select((eb) => [
      'p.version_number as version',
      sql<string>`p.xmin::text`.as('xmin'),
      jsonArrayFrom(
        eb
          .selectFrom('batches as b')
          .select(['b.ref', 'b.eta', 'b.purchased', 'b.allocated'])
          .whereRef('b.sku', '=', 'p.sku')
          .orderBy(sql`b.eta asc nulls first`)
          .orderBy('b.id'),
      ).as('batches'),
      waitingQty(eb, 'backordered').as('backordered'),
      waitingQty(eb, 'held').as('held'),
    ])
    .where('p.sku', '=', sku),
)

/** The qty of a sku's lines in `status`, summed over its partial index (never the allocated history). */
export function waitingQty(
  eb: ExpressionBuilder<Schema & { p: Schema['products'] }, 'p'>,
  status: 'backordered' | 'held',
) {
  return eb
    .selectFrom('allocations as a')
    .select(sql<number>`coalesce(sum(a.qty), 0)`.as('qty'))
    .whereRef('a.sku', '=', 'p.sku')
    .where('a.status', '=', sql.lit(status))
}
