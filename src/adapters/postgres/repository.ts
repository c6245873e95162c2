import { type Kysely, type RawBuilder, sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import type { DomainEvent } from '../../domain/events.ts'
import { Batch, type LineState, type LineStatus, Product } from '../../domain/model.ts'
import { ConcurrencyConflict, type LoadOptions, type StoredEvent, type WaitingPage } from '../../service-layer/ports.ts'
import type { ProductStore } from '../../service-layer/tracking-repository.ts'
import { json, type NewBatchesOf } from './new-batches.ts'
import { type BatchRow, cachedBatches, type ProductCacheView } from './product-cache.ts'
import { save } from './save-statement.ts'
import type { Schema } from './schema.ts'

/** The database or a transaction on it. */
export type Executor = Kysely<Schema>

/** A line row as loaded: `ref` is its batch's, `expires_ms` epoch milliseconds, `placed` its place on the batch. */
type LineRow = Readonly<{
  id: number
  orderid: string
  qty: number
  status: LineStatus
  ref: string | null
  expires_ms: number | null
  placed: number
}>

/** What a product looked like when loaded: the writes at commit are the difference. */
type Snapshot = Readonly<{
  versionNumber: number
  batches: ReadonlyMap<string, BatchRow>
  /** The stored lines loaded, by orderid; the backorder queue adds to it while filling. */
  lines: Map<string, LineState>
  /** Lines assumed unallocated without reading them; the save checks it. */
  assumedNew: readonly string[]
  /** Whether lines may be waiting: `false` only when the load saw none, so the queue need not be read. */
  waiting: boolean
}>

/**
 * Loads a product in one statement (one consistent snapshot) and saves its changes in one statement
 * guarded by the version it was loaded at: no transaction to hold open. Allocating new lines of a
 * product this process wrote last takes the save alone: the product comes from the cache, and the
 * save checks that its version still holds and that the lines were indeed unallocated.
 * With `lock`, the product row is locked first and read afresh, for a retry that must not lose again.
 */
export class PgProductStore implements ProductStore {
  readonly #executor: () => Promise<Executor>
  readonly #lock: boolean
  readonly #cache: ProductCacheView
  readonly #snapshots = new WeakMap<Product, Snapshot>()

  constructor(executor: () => Promise<Executor>, lock: boolean, cache: ProductCacheView) {
    this.#executor = executor
    this.#lock = lock
    this.#cache = cache
  }

  async load(sku: string, { orderids = [], newLines = [], excessOf }: LoadOptions): Promise<Product | undefined> {
    const cached = !this.#lock && !excessOf && orderids.length === 0 ? this.#cache.get(sku) : undefined
    if (cached && newLines.length > 0) return this.#product(sku, cached.versionNumber, cached.batches, [], newLines)
    const db = await this.#executor()
    if (this.#lock) {
      // A statement that waited for a lock still reads the other tables as they were when it began,
      // so the product is read by a later statement than the one that locks it.
      const locked = await db.selectFrom('products').select('sku').where('sku', '=', sku).forUpdate().executeTakeFirst()
      if (!locked) return undefined
    }
    const row = await withLines(db, sql<string>`any(${[...orderids, ...newLines]}::text[])`)
      .where('p.sku', '=', sku)
      .executeTakeFirst()
    if (!row) return undefined
    const shrunk = excessOf && row.batches.find((b) => b.ref === excessOf.ref)
    const excess = shrunk && excessOf ? shrunk.allocated - excessOf.qty : 0
    const covering = shrunk && excess > 0 ? await latestCovering(db, sku, shrunk, excess).execute() : []
    if (!this.#lock && covering.reduce((sum, line) => sum + line.qty, 0) < excess) {
      // Read by a second statement, the lines left the batch in between: read again, locked this time.
      throw new ConcurrencyConflict(`The lines of batch ${excessOf?.ref} changed while they were read`)
    }
    return this.#loaded(row, covering)
  }

  /** One statement whatever the number of products (two with `lock`, which locks them all first). */
  async loadWithLines(orderidsOf: ReadonlyMap<string, readonly string[]>): Promise<Product[]> {
    const db = await this.#executor()
    const skus = anyOf([...orderidsOf.keys()])
    if (this.#lock) {
      await db.selectFrom('products').select('sku').where('sku', '=', skus).orderBy('sku').forUpdate().execute()
    }
    const bySku = json(Object.fromEntries(orderidsOf))
    const orderids = sql<string>`any(array(select jsonb_array_elements_text(${bySku} -> p.sku)))`
    const rows = await withLines(db, orderids).where('p.sku', '=', skus).execute()
    return rows.map((row) => this.#loaded(row, []))
  }

  /** The product of a row of `withLines`, with `more` of its lines read apart; it goes into the cache. */
  #loaded(row: ProductRow, more: readonly LineRow[]): Product {
    const { sku } = row
    const lines = [...(row.lines as LineRow[]), ...more].sort((a, b) => a.id - b.id).map((a) => toLineState(sku, a))
    this.#cache.set(sku, { versionNumber: row.version_number, batches: row.batches })
    const product = this.#product(sku, row.version_number, row.batches, lines, [])
    this.#markWaiting(product, Boolean(row.waiting))
    return product
  }

  /**
   * Three statements whatever the number of products: their versions and whether lines wait on them,
   * the batches named by `refs`, and all the batches of the few on which lines wait.
   */
  async loadMany(skus: readonly string[], refs: readonly string[]): Promise<Product[]> {
    const db = await this.#executor()
    const products = await db
      .selectFrom('products as p')
      .select((eb) => [
        'p.sku',
        'p.version_number',
        eb
          .exists(
            eb
              .selectFrom('allocations as a')
              .whereRef('a.sku', '=', 'p.sku')
              .where('a.status', '=', sql.lit('backordered')),
          )
          .as('waiting'),
      ])
      .where('p.sku', '=', anyOf(skus))
      .execute()
    const waiting = products.filter((p) => p.waiting).map((p) => p.sku)
    const batches = await db
      .selectFrom('batches')
      .select(['id', 'ref', 'sku', 'eta', 'purchased', 'allocated'])
      .where((eb) =>
        waiting.length === 0
          ? eb('ref', '=', anyOf(refs))
          : eb.or([eb('ref', '=', anyOf(refs)), eb('sku', '=', anyOf(waiting))]),
      )
      .orderBy('id')
      .execute()
    const bySku = Map.groupBy(batches, (b) => b.sku)
    return products.map(({ sku, version_number, waiting }) => {
      const product = this.#product(sku, version_number, bySku.get(sku) ?? [], [], [])
      this.#markWaiting(product, Boolean(waiting))
      return product
    })
  }

  #markWaiting(product: Product, waiting: boolean): void {
    const snapshot = this.#snapshots.get(product)
    if (snapshot) this.#snapshots.set(product, { ...snapshot, waiting })
  }

  async loadWaiting(product: Product, { after, maxQty, limit }: WaitingPage): Promise<number | null> {
    const snapshot = this.#snapshots.get(product)
    // A product this unit of work created has no lines; one loaded with none waiting has none either.
    if (!snapshot?.waiting) return null
    const db = await this.#executor()
    const rows = await db
      .selectFrom('allocations')
      .select(['id', 'orderid', 'qty'])
      .where('sku', '=', product.sku)
      .where('status', '=', sql.lit('backordered'))
      .where('qty', '<=', maxQty)
      .where('id', '>', after)
      .orderBy('id')
      .limit(limit)
      .execute()
    for (const row of rows) {
      if (product.lines.has(row.orderid)) continue
      const line = toLineState(product.sku, {
        ...row,
        status: 'backordered',
        ref: null,
        expires_ms: null,
        placed: row.id,
      })
      product.lines.set(row.orderid, line)
      snapshot.lines.set(row.orderid, line)
    }
    return rows.length === limit ? (rows.at(-1)?.id ?? null) : null
  }

  #product(
    sku: string,
    versionNumber: number,
    batches: readonly BatchRow[],
    lines: LineState[],
    assumedNew: readonly string[],
  ): Product {
    const product = new Product({
      sku,
      versionNumber,
      batches: batches.map(
        (b) =>
          new Batch({
            ref: b.ref,
            sku,
            eta: b.eta,
            seq: b.id,
            purchasedQuantity: b.purchased,
            allocatedQuantity: b.allocated,
          }),
      ),
      lines,
    })
    this.#snapshots.set(product, {
      versionNumber,
      batches: new Map(batches.map((b) => [b.ref, b])),
      lines: new Map(lines.map((l) => [l.line.orderid, l])),
      assumedNew,
      waiting: true,
    })
    return product
  }

  async skuOfBatch(ref: string): Promise<string | undefined> {
    const db = await this.#executor()
    const row = await db.selectFrom('batches').select('sku').where('ref', '=', ref).executeTakeFirst()
    return row?.sku
  }

  async skusOfBatches(refs: readonly string[]): Promise<Map<string, string>> {
    const db = await this.#executor()
    const rows = await db.selectFrom('batches').select(['ref', 'sku']).where('ref', '=', anyOf(refs)).execute()
    return new Map(rows.map((r) => [r.ref, r.sku]))
  }

  /**
   * The product's change when it is new batches only (as a bulk import makes), for `saveNewBatches`;
   * `undefined` when it is anything else, or nothing.
   */
  newBatchesOf(product: Product): NewBatchesOf | undefined {
    const before = this.#snapshots.get(product)
    const { events } = product
    if (events.length === 0 || events.some((e) => e.type !== 'BatchCreated')) return undefined
    this.#cache.forget(product.sku)
    return {
      product,
      from: before?.versionNumber ?? null,
      newRefs: new Set(product.batches.filter((b) => !before?.batches.has(b.ref)).map((b) => b.ref)),
    }
  }

  /** Whether saving `product` takes more than the one guarded statement (a new product or batch). */
  needsTransaction(product: Product): boolean {
    const before = this.#snapshots.get(product)
    return !before || product.batches.some((b) => !before.batches.has(b.ref))
  }

  /**
   * Writes the product's changes, its events and the ids of the messages handled, all conditional on
   * the product still being at the version it was loaded at; otherwise throws `ConcurrencyConflict`.
   */
  async save(product: Product, messageIds: readonly string[], db: Executor): Promise<StoredEvent[]> {
    const { sku } = product
    let before = this.#snapshots.get(product)
    const unchanged = before?.versionNumber === product.versionNumber
    if (unchanged && product.events.length === 0 && messageIds.length === 0) return []
    if (!before) {
      await db.insertInto('products').values({ sku, version_number: 0 }).execute()
      before = { versionNumber: 0, batches: new Map(), lines: new Map(), assumedNew: [], waiting: false }
    }
    const batchIds = new Map([...before.batches].map(([ref, b]) => [ref, b.id]))
    for (const batch of product.batches.filter((b) => !before.batches.has(b.ref))) {
      const { id } = await db
        .insertInto('batches')
        .values({
          ref: batch.ref,
          sku,
          eta: batch.eta,
          purchased: batch.purchasedQuantity,
          allocated: batch.allocatedQuantity,
        })
        .returning('id')
        .executeTakeFirstOrThrow()
      batchIds.set(batch.ref, id)
    }
    const events: DomainEvent[] = product.events.splice(0)
    const changedBatches = product.batches.flatMap((b) => {
      const old = before.batches.get(b.ref)
      return old &&
        (old.purchased !== b.purchasedQuantity || old.allocated !== b.allocatedQuantity || old.eta !== b.eta)
        ? [{ id: old.id, purchased: b.purchasedQuantity, allocated: b.allocatedQuantity, eta: b.eta }]
        : []
    })
    const current = [...product.lines.values()]
    const added = current.filter((l) => !before.lines.has(l.line.orderid))
    const changed = current.filter((l) => {
      const old = before.lines.get(l.line.orderid)
      return (
        old &&
        (old.line.qty !== l.line.qty ||
          old.status !== l.status ||
          old.batchref !== l.batchref ||
          old.expiresAt !== l.expiresAt ||
          old.placed !== l.placed)
      )
    })
    const batchIdOf = (l: LineState) => (l.batchref === null ? null : (batchIds.get(l.batchref) ?? null))
    const expiryOf = (l: LineState) => (l.expiresAt === null ? null : new Date(l.expiresAt).toISOString())
    const rows = await save(db, {
      sku,
      from: before.versionNumber,
      to: product.versionNumber,
      batchIds: changedBatches.map((b) => b.id),
      purchased: changedBatches.map((b) => b.purchased),
      allocated: changedBatches.map((b) => b.allocated),
      etas: changedBatches.map((b) => b.eta),
      removed: [...before.lines.keys()].filter((orderid) => !product.lines.has(orderid)),
      changedOrderids: changed.map((l) => l.line.orderid),
      changedQtys: changed.map((l) => l.line.qty),
      changedStatuses: changed.map((l) => l.status),
      changedBatchIds: changed.map(batchIdOf),
      changedExpiries: changed.map(expiryOf),
      changedPlaced: changed.map((l) => l.placed === null),
      addedOrderids: added.map((l) => l.line.orderid),
      addedQtys: added.map((l) => l.line.qty),
      addedStatuses: added.map((l) => l.status),
      addedBatchIds: added.map(batchIdOf),
      addedExpiries: added.map(expiryOf),
      events: JSON.stringify(events),
      messageIds,
      assumedNew: before.assumedNew,
    }).catch((error: unknown) => {
      this.#cache.forget(sku)
      throw error
    })
    if (!rows[0]?.saved) {
      const current = rows[0]?.current
      if (current?.versionNumber === before.versionNumber) {
        // No other writer: a line assumed new exists (the same line sent again). Read afresh, it is answered.
        this.#cache.forget(sku)
        throw new ConcurrencyConflict(`A line of product ${sku} assumed new exists`, { refreshed: true, raced: false })
      }
      if (current) this.#cache.set(sku, current)
      else this.#cache.forget(sku)
      throw new ConcurrencyConflict(`Product ${sku} changed since it was loaded`, { refreshed: Boolean(current) })
    }
    // Within a transaction, the entry waits for its commit (UnitOfWorkCache).
    this.#cache.set(sku, {
      versionNumber: product.versionNumber,
      batches: product.batches.map((b) => ({
        id: batchIds.get(b.ref) ?? b.seq,
        ref: b.ref,
        eta: b.eta,
        purchased: b.purchasedQuantity,
        allocated: b.allocatedQuantity,
      })),
    })
    return rows[0].event_ids.map(Number).map((id, i) => ({ id, event: events[i] as DomainEvent }))
  }
}

/** Any of many values, sent as one JSON parameter (an array parameter of a thousand costs far more). */
const anyOf = (values: readonly string[]) => sql<string>`any(array(select jsonb_array_elements_text(${json(values)})))`

const expiresMs = sql<number | null>`(extract(epoch from a.expires_at) * 1000)::float8`.as('expires_ms')
/** When the line was placed on its batch: after its acceptance (`placed`), or when accepted (its id). */
const placed = sql<number>`coalesce(a.placed, a.id)`.as('placed')

function toLineState(sku: string, row: LineRow): LineState {
  return {
    line: { orderid: row.orderid, sku, qty: row.qty },
    status: row.status,
    batchref: row.ref,
    expiresAt: row.expires_ms === null ? null : Math.round(row.expires_ms),
    accepted: row.id,
    placed: Number(row.placed),
  }
}

/**
 * Products (to be filtered by the caller) with all their batches, the lines whose orderid is `orderids`
 * (an `any(...)` that may name `p.sku`) and whether lines wait on them, in one statement: one consistent
 * snapshot.
 */
function withLines(db: Executor, orderids: RawBuilder<string>) {
  return db.selectFrom('products as p').select((eb) => [
    'p.sku',
    'p.version_number',
    cachedBatches.as('batches'),
    jsonArrayFrom(
      eb
        .selectFrom('allocations as a')
        .leftJoin('batches as b', 'b.id', 'a.batch_id')
        .select(['a.id', 'a.orderid', 'a.qty', 'a.status', 'b.ref', expiresMs, placed])
        .whereRef('a.sku', '=', 'p.sku')
        .where('a.orderid', '=', orderids)
        .orderBy('a.id'),
    ).as('lines'),
    // Read with the product, so that a change which frees stock reads the queue only if lines wait.
    eb
      .exists(
        eb
          .selectFrom('allocations as w')
          .whereRef('w.sku', '=', 'p.sku')
          .where('w.status', '=', sql.lit('backordered')),
      )
      .as('waiting'),
  ])
}

type ProductRow = Awaited<ReturnType<ReturnType<typeof withLines>['executeTakeFirstOrThrow']>>

/**
 * The lines most recently placed on `batch` (allocated or held) that together cover `excess` of its
 * allocated qty, and no more. Each line holds at least one unit, so no more than `excess` lines are read
 * from each of the batch's two indexes, newest first: the lines placed when they were accepted (by id)
 * and those placed later (by `placed`). The cost is what moves, not the batch's history (summed over all
 * its lines, a batch with 500,000 lines took 370 ms to preview a move of one unit). The batch is matched
 * by a range, not by `=`, so that no plan can walk the primary key backwards instead.
 */
export function latestCovering(db: Executor, sku: string, batch: BatchRow, excess: number) {
  const onBatch = () =>
    db
      .selectFrom('allocations as a')
      .select(['a.id', 'a.orderid', 'a.qty', 'a.status', expiresMs, placed])
      .where('a.sku', '=', sku)
      .where('a.batch_id', '>=', batch.id)
      .where('a.batch_id', '<=', batch.id)
      .orderBy('a.batch_id', 'desc')
      .limit(excess)
  const whenAccepted = onBatch().where('a.placed', 'is', null).orderBy('a.id', 'desc')
  const later = onBatch().where('a.placed', 'is not', null).orderBy('a.placed', 'desc')
  return db
    .selectFrom((eb) =>
      eb
        .selectFrom(
          db
            .selectFrom(whenAccepted.as('w'))
            .selectAll()
            .unionAll(db.selectFrom(later.as('l')).selectAll())
            .as('a'),
        )
        .select([
          'a.id',
          'a.orderid',
          'a.qty',
          'a.status',
          'a.expires_ms',
          'a.placed',
          sql<number>`sum(a.qty) over (order by a.placed desc) - a.qty`.as('newer'),
        ])
        .as('newest_first'),
    )
    .select(['id', 'orderid', 'qty', 'status', sql<string>`${batch.ref}::text`.as('ref'), 'expires_ms', 'placed'])
    .where('newer', '<', excess)
}
