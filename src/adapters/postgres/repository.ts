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
  readonly #transaction: () => Promise<Transaction<Schema>>
  readonly #snapshots = new WeakMap<Product, Snapshot>()

  constructor(transaction: () => Promise<Transaction<Schema>>) {
    this.#transaction = transaction
  }

  async load(sku: string, load: LoadOptions): Promise<Product | undefined> {
    const trx = await this.#transaction()
    // Lock first, then read: a statement that waited for the lock still reads its own, older snapshot
    // of the other tables, so the batches must come from a statement that starts after the lock is held.
    const locked = await trx
      .selectFrom('products')
      .select('version_number')
      .where('sku', '=', sku)
      .forUpdate()
      .executeTakeFirst()
    if (!locked) return undefined
    const batches = await trx
      .selectFrom('batches')
      .select(['id', 'ref', 'eta', 'purchased', 'allocated'])
      .where('sku', '=', sku)
      .orderBy('id')
      .execute()
    const allocations = await this.#loadAllocations(trx, sku, load)
    const product = new Product({
      sku,
      versionNumber: locked.version_number,
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
      versionNumber: locked.version_number,
      batches: new Map(batches.map((b) => [b.ref, b])),
      allocations: new Map(allocations.map((a) => [a.line.orderid, a.batchref])),
    })
    return product
  }

  async #loadAllocations(
    trx: Transaction<Schema>,
    sku: string,
    { orderids = [], excessOf }: LoadOptions,
  ): Promise<Allocation[]> {
    const rows = [
      ...(orderids.length > 0 ? await allocationsOf(trx, sku, orderids) : []),
      ...(excessOf ? await latestCovering(trx, excessOf.ref, excessOf.qty) : []),
    ].sort((a, b) => a.id - b.id)
    return rows.map((r) => ({ line: { orderid: r.orderid, sku, qty: r.qty }, batchref: r.ref }))
  }

  async skuOfBatch(ref: string): Promise<string | undefined> {
    const trx = await this.#transaction()
    const row = await trx.selectFrom('batches').select('sku').where('ref', '=', ref).executeTakeFirst()
    return row?.sku
  }

  /** Writes the product's changes; a version that moved since the load is a conflict. */
  async save(product: Product): Promise<void> {
    const trx = await this.#transaction()
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

function allocationsOf(trx: Transaction<Schema>, sku: string, orderids: readonly string[]) {
  return trx
    .selectFrom('allocations as a')
    .innerJoin('batches as b', 'b.id', 'a.batch_id')
    .select(['a.id', 'a.orderid', 'a.qty', 'b.ref'])
    .where('a.sku', '=', sku)
    .where('a.orderid', 'in', orderids)
    .execute()
}

/** The newest allocations of batch `ref` that together cover what it holds beyond `qty`, and no more. */
function latestCovering(trx: Transaction<Schema>, ref: string, qty: number) {
  return trx
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
