import { type Kysely, sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import type { DomainEvent } from '../../domain/events.ts'
import { type Allocation, Batch, Product } from '../../domain/model.ts'
import { ConcurrencyConflict, type LoadOptions, type StoredEvent } from '../../service-layer/ports.ts'
import type { ProductStore } from '../../service-layer/tracking-repository.ts'
import type { Schema } from './schema.ts'

/** The database or a transaction on it. */
export type Executor = Kysely<Schema>

/** What a product looked like when loaded: the writes at commit are the difference. */
type Snapshot = Readonly<{
  versionNumber: number
  batches: ReadonlyMap<string, Readonly<{ id: number; purchased: number; allocated: number }>>
  allocations: ReadonlySet<string>
}>

/**
 * Loads a product in one statement (one consistent snapshot) and saves its changes in one statement
 * guarded by the version it was loaded at: an allocation is two round trips and needs no transaction.
 * With `lock`, the product row is locked first, for a retry that must not lose the race again.
 */
export class PgProductStore implements ProductStore {
  readonly #executor: () => Promise<Executor>
  readonly #lock: boolean
  readonly #snapshots = new WeakMap<Product, Snapshot>()

  constructor(executor: () => Promise<Executor>, lock: boolean) {
    this.#executor = executor
    this.#lock = lock
  }

  async load(sku: string, { orderids = [], excessOf }: LoadOptions): Promise<Product | undefined> {
    const db = await this.#executor()
    if (this.#lock) {
      // A statement that waited for a lock still reads the other tables as they were when it began,
      // so the product is read by a later statement than the one that locks it.
      const locked = await db.selectFrom('products').select('sku').where('sku', '=', sku).forUpdate().executeTakeFirst()
      if (!locked) return undefined
    }
    const row = await db
      .selectFrom('products as p')
      .select((eb) => [
        'p.version_number',
        jsonArrayFrom(
          eb
            .selectFrom('batches as b')
            .select(['b.id', 'b.ref', 'b.eta', 'b.purchased', 'b.allocated'])
            .whereRef('b.sku', '=', 'p.sku')
            .orderBy('b.id'),
        ).as('batches'),
        jsonArrayFrom(
          eb
            .selectFrom('allocations as a')
            .innerJoin('batches as b', 'b.id', 'a.batch_id')
            .select(['a.id', 'a.orderid', 'a.qty', 'b.ref'])
            .whereRef('a.sku', '=', 'p.sku')
            .where('a.orderid', '=', sql<string>`any(${orderids}::text[])`)
            .orderBy('a.id'),
        ).as('allocations'),
      ])
      .where('p.sku', '=', sku)
      .executeTakeFirst()
    if (!row) return undefined
    const covering = excessOf ? await latestCovering(db, excessOf.ref, excessOf.qty) : []
    const allocations: Allocation[] = [...row.allocations, ...covering]
      .sort((a, b) => a.id - b.id)
      .map((a) => ({ line: { orderid: a.orderid, sku, qty: a.qty }, batchref: a.ref }))
    const product = new Product({
      sku,
      versionNumber: row.version_number,
      batches: row.batches.map(
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
      versionNumber: row.version_number,
      batches: new Map(row.batches.map((b) => [b.ref, b])),
      allocations: new Set(allocations.map((a) => a.line.orderid)),
    })
    return product
  }

  async skuOfBatch(ref: string): Promise<string | undefined> {
    const db = await this.#executor()
    const row = await db.selectFrom('batches').select('sku').where('ref', '=', ref).executeTakeFirst()
    return row?.sku
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
      before = { versionNumber: 0, batches: new Map(), allocations: new Set() }
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
    const changes = {
      batches: product.batches.flatMap((b) => {
        const old = before.batches.get(b.ref)
        return old && (old.purchased !== b.purchasedQuantity || old.allocated !== b.allocatedQuantity)
          ? [{ id: old.id, purchased: b.purchasedQuantity, allocated: b.allocatedQuantity }]
          : []
      }),
      removed: [...before.allocations].filter((orderid) => !product.allocations.has(orderid)),
      added: [...product.allocations.values()]
        .filter((a) => !before.allocations.has(a.line.orderid))
        .map((a) => ({ orderid: a.line.orderid, qty: a.line.qty, batch_id: batchIds.get(a.batchref) })),
      events: events.map((event) => ({ type: event.type, payload: event })),
      messages: messageIds,
    }
    const { rows } = await saveStatement(sku, before.versionNumber, product.versionNumber, changes).execute(db)
    if (!rows[0]?.saved) throw new ConcurrencyConflict(`Product ${sku} changed since it was loaded`)
    return rows[0].event_ids.map(Number).map((id, i) => ({ id, event: events[i] as DomainEvent }))
  }
}

/** One statement whatever the change: its shape never varies, so it is prepared once per connection. */
function saveStatement(sku: string, from: number, to: number, changes: object) {
  return sql<{ saved: boolean; event_ids: Array<number | string> }>`
    with changes as (select ${JSON.stringify(changes)}::jsonb as c),
    version as (
      update products set version_number = ${to} where sku = ${sku} and version_number = ${from} returning sku
    ),
    changed_batches as (
      update batches set purchased = u.purchased, allocated = u.allocated
      from changes, jsonb_to_recordset(changes.c -> 'batches') as u(id bigint, purchased int, allocated int)
      where batches.id = u.id and exists (select from version)
    ),
    removed as (
      delete from allocations using changes
      where sku = ${sku} and orderid in (select jsonb_array_elements_text(changes.c -> 'removed'))
        and exists (select from version)
    ),
    added as (
      insert into allocations (orderid, sku, qty, batch_id)
      select u.orderid, ${sku}, u.qty, u.batch_id
      from changes, jsonb_to_recordset(changes.c -> 'added') as u(orderid text, qty int, batch_id bigint)
      where exists (select from version)
    ),
    events as (
      insert into outbox (sku, type, payload)
      select ${sku}, e.value ->> 'type', e.value -> 'payload'
      from changes, jsonb_array_elements(changes.c -> 'events') with ordinality as e(value, n)
      where exists (select from version)
      order by e.n
      returning id
    ),
    messages as (
      insert into handled_messages (id)
      select jsonb_array_elements_text(changes.c -> 'messages') from changes
      where exists (select from version)
    )
    select exists (select from version) as saved, array(select id from events order by id) as event_ids`
}

/** The newest allocations of batch `ref` that together cover what it holds beyond `qty`, and no more. */
function latestCovering(db: Executor, ref: string, qty: number) {
  return db
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
