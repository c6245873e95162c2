import { type Kysely, sql } from 'kysely'
import type { DomainEvent } from '../../domain/events.ts'
import type { Product } from '../../domain/model.ts'
import { ConcurrencyConflict, type StoredEvent } from '../../service-layer/ports.ts'
import type { Schema } from './schema.ts'

/** A product whose only change is new batches, with the version it was loaded at (`null`: it is new). */
export type NewBatchesOf = Readonly<{ product: Product; from: number | null; newRefs: ReadonlySet<string> }>

/**
 * Saves the new batches of many products with one multi-row statement per table, as a bulk import needs:
 * new products inserted, the others' versions moved on only from the version they were loaded at, the
 * batches inserted in their order of creation, and their events written to the outbox.
 */
export async function saveNewBatches(changes: readonly NewBatchesOf[], db: Kysely<Schema>): Promise<StoredEvent[]> {
  const created = changes.filter((c) => c.from === null).map((c) => c.product)
  const loaded = changes.filter((c) => c.from !== null)
  if (created.length > 0) {
    await sql`
      insert into products (sku, version_number)
      select * from unnest(${created.map((p) => p.sku)}::text[], ${created.map((p) => p.versionNumber)}::int[])`.execute(
      db,
    )
  }
  if (loaded.length > 0) {
    const { numAffectedRows } = await sql`
      update products set version_number = u.to
      from unnest(
        ${loaded.map((c) => c.product.sku)}::text[], ${loaded.map((c) => c.from)}::int[],
        ${loaded.map((c) => c.product.versionNumber)}::int[]
      ) as u(sku, "from", "to")
      where products.sku = u.sku and products.version_number = u.from`.execute(db)
    if (Number(numAffectedRows) !== loaded.length) {
      throw new ConcurrencyConflict('A product changed since it was loaded for its new batches')
    }
  }
  const batches = changes.flatMap(({ product, newRefs }) => product.batches.filter((b) => newRefs.has(b.ref)))
  await sql`
    insert into batches (ref, sku, eta, purchased, allocated)
    select u.ref, u.sku, u.eta, u.purchased, u.allocated
    from unnest(
      ${batches.map((b) => b.ref)}::text[], ${batches.map((b) => b.sku)}::text[], ${batches.map((b) => b.eta)}::date[],
      ${batches.map((b) => b.purchasedQuantity)}::int[], ${batches.map((b) => b.allocatedQuantity)}::int[]
    ) with ordinality as u(ref, sku, eta, purchased, allocated, n)
    order by u.n`.execute(db)
  const events: DomainEvent[] = changes.flatMap(({ product }) => product.events.splice(0))
  const { rows } = await sql<{ id: number | string }>`
    insert into outbox (sku, type, payload)
    select u.sku, u.type, u.payload
    from unnest(
      ${events.map((e) => e.sku)}::text[], ${events.map((e) => e.type)}::text[],
      ${events.map((e) => JSON.stringify(e))}::jsonb[]
    ) with ordinality as u(sku, type, payload, n)
    order by u.n
    returning id`.execute(db)
  const ids = rows.map((r) => Number(r.id)).sort((a, b) => a - b)
  return ids.map((id, i) => ({ id, event: events[i] as DomainEvent }))
}
