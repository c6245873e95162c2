import { sql, type Transaction } from 'kysely'
import { type Allocation, Batch, Product } from '../../domain/model.ts'
import { ConcurrencyConflict, type LoadOptions } from '../../service-layer/ports.ts'
import type { ProductStore } from '../../service-layer/tracking-repository.ts'
import type { Schema } from './schema.ts'

/** What a product looked like when loaded: the writes at commit are the difference. */
type Snapshot = Readonly<{
  versionNumber: number | null
  batches: ReadonlyMap<string, Readonly<{ id: number; purchased: number; allocated: number }>>
  allocations: ReadonlyMap<string, string>
}>

/**
 * Loads products inside a transaction, locking the product row so that writers of one sku queue
 * instead of failing, and writes back only what changed.
 */
export class PgProductStore implements ProductStore {
  readonly #trx: Transaction<Schema>
  readonly #snapshots = new WeakMap<Product, Snapshot>()

  constructor(trx: Transaction<Schema>) {
    this.#trx = trx
  }

  async load(sku: string, load: LoadOptions): Promise<Product | undefined> {
    const rows = await this.#trx
      .selectFrom('products as p')
      .leftJoin('batches as b', 'b.sku', 'p.sku')
      .select(['p.version_number', 'b.id', 'b.ref', 'b.eta', 'b.purchased', 'b.allocated'])
      .where('p.sku', '=', sku)
      .orderBy('b.id')
      .forUpdate('p')
      .execute()
    const first = rows[0]
    if (!first) return undefined
    const batches = rows.flatMap((r) =>
      r.id === null || r.ref === null || r.purchased === null || r.allocated === null
        ? []
        : [{ id: r.id, ref: r.ref, eta: r.eta, purchased: r.purchased, allocated: r.allocated }],
    )
    const allocations = await this.#loadAllocations(sku, load)
    const product = new Product({
      sku,
      versionNumber: first.version_number,
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
      allocations,
    })
    this.#snapshots.set(product, {
      versionNumber: first.version_number,
      batches: new Map(batches.map((b) => [b.ref, b])),
      allocations: new Map(allocations.map((a) => [a.line.orderid, a.batchref])),
    })
    return product
  }

  async #loadAllocations(sku: string, { orderids = [], excessOf }: LoadOptions): Promise<Allocation[]> {
    const rows = [
      ...(orderids.length > 0 ? await this.#allocationsOf(sku, orderids) : []),
      ...(excessOf ? await this.#latestCovering(excessOf.ref, excessOf.qty) : []),
    ].sort((a, b) => a.id - b.id)
    return rows.map((r) => ({ line: { orderid: r.orderid, sku, qty: r.qty }, batchref: r.ref }))
  }

  #allocationsOf(sku: string, orderids: readonly string[]) {
    return this.#trx
      .selectFrom('allocations as a')
      .innerJoin('batches as b', 'b.id', 'a.batch_id')
      .select(['a.id', 'a.orderid', 'a.qty', 'b.ref'])
      .where('a.sku', '=', sku)
      .where('a.orderid', 'in', orderids)
      .execute()
  }

  /** The newest allocations of batch `ref` that together cover what it holds beyond `qty`, and no more. */
  #latestCovering(ref: string, qty: number) {
    return this.#trx
      .selectFrom((eb) =>
        eb
          .selectFrom('allocations as a')
          .innerJoin('batches as b', 'b.id', 'a.batch_id')
          .select([
            'a.id',
            'a.orderid',
            'a.qty',
            'b.ref',
            sql<number>`b.allocated - ${qty} - sum(a.qty) over (order by a.id desc) + a.qty`.as('excess_before'),
          ])
          .where('b.ref', '=', ref)
          .as('newest_first'),
      )
      .select(['id', 'orderid', 'qty', 'ref'])
      .where('excess_before', '>', 0)
      .execute()
  }

  async skuOfBatch(ref: string): Promise<string | undefined> {
    const row = await this.#trx.selectFrom('batches').select('sku').where('ref', '=', ref).executeTakeFirst()
    return row?.sku
  }

  /** Writes the product's changes; a version that moved since the load is a conflict. */
  async save(product: Product): Promise<void> {
    const trx = this.#trx
    const before = this.#snapshots.get(product) ?? { versionNumber: null, batches: new Map(), allocations: new Map() }
    if (before.versionNumber === product.versionNumber) return
    if (before.versionNumber === null) {
      await trx.insertInto('products').values({ sku: product.sku, version_number: product.versionNumber }).execute()
    } else {
      const updated = await trx
        .updateTable('products')
        .set({ version_number: product.versionNumber })
        .where('sku', '=', product.sku)
        .where('version_number', '=', before.versionNumber)
        .executeTakeFirst()
      if (updated.numUpdatedRows === 0n) throw new ConcurrencyConflict(`Product ${product.sku} changed concurrently`)
    }
    const ids = new Map<string, number>()
    for (const batch of product.batches) {
      const old = before.batches.get(batch.ref)
      if (!old) {
        const { id } = await trx
          .insertInto('batches')
          .values({
            ref: batch.ref,
            sku: product.sku,
            eta: batch.eta,
            purchased: batch.purchasedQuantity,
            allocated: batch.allocatedQuantity,
          })
          .returning('id')
          .executeTakeFirstOrThrow()
        ids.set(batch.ref, id)
        continue
      }
      ids.set(batch.ref, old.id)
      if (old.purchased !== batch.purchasedQuantity || old.allocated !== batch.allocatedQuantity) {
        await trx
          .updateTable('batches')
          .set({ purchased: batch.purchasedQuantity, allocated: batch.allocatedQuantity })
          .where('id', '=', old.id)
          .execute()
      }
    }
    const removed = [...before.allocations.keys()].filter((orderid) => !product.allocations.has(orderid))
    if (removed.length > 0) {
      await trx.deleteFrom('allocations').where('sku', '=', product.sku).where('orderid', 'in', removed).execute()
    }
    const added = [...product.allocations.values()].filter((a) => !before.allocations.has(a.line.orderid))
    if (added.length > 0) {
      await trx
        .insertInto('allocations')
        .values(
          added.map((a) => ({
            orderid: a.line.orderid,
            sku: product.sku,
            qty: a.line.qty,
            batch_id: ids.get(a.batchref) ?? Number.NaN,
          })),
        )
        .execute()
    }
  }
}
