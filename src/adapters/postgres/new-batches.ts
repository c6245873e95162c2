import { type Kysely, sql } from 'kysely'
import type { DomainEvent } from '../../domain/events.ts'
import type { Product } from '../../domain/model.ts'
import { ConcurrencyConflict, type StoredEvent } from '../../service-layer/ports.ts'
import { PENDING_DELIVERIES } from './save-statement.ts'
import type { Schema } from './schema.ts'

/** A product whose only change is new batches, with the version it was loaded at (`null`: it is new). */
export type NewBatchesOf = Readonly<{ product: Product; from: number | null; newRefs: ReadonlySet<string> }>

/**
 * Saves the new batches of many products with one multi-row statement per table, as a bulk import needs:
 * new products inserted, the others' versions moved on only from the version they were loaded at, the
 * batches inserted in their order of creation, and their events written to the outbox.
 */
export async function saveNewBatches(changes: readonly NewBatchesOf[], db: Kysely<Schema>): Promise<StoredEvent[]> {
  const created = changes.filter((c) => c.from === null).map(({ product: p }) => ({ sku: p.sku, to: p.versionNumber }))
  const loaded = changes.flatMap(({ product: p, from }) =>
    from === null ? [] : [{ sku: p.sku, from, to: p.versionNumber }],
  )
  if (created.length > 0) {
    await sql`
      insert into products (sku, version_number)
      select u.e->>'sku', (u.e->>'to')::int from jsonb_array_elements(${json(created)}) as u(e)`.execute(db)
  }
  if (loaded.length > 0) {
    const { numAffectedRows } = await sql`
      update products set version_number = (u.e->>'to')::int
      from jsonb_array_elements(${json(loaded)}) as u(e)
      where products.sku = u.e->>'sku' and products.version_number = (u.e->>'from')::int`.execute(db)
    if (Number(numAffectedRows) !== loaded.length) {
      throw new ConcurrencyConflict('A product changed since it was loaded for its new batches')
    }
  }
  const batches = changes.flatMap(({ product, newRefs }) =>
    product.batches
      .filter((b) => newRefs.has(b.ref))
      .map((b) => ({
        ref: b.ref,
        sku: b.sku,
        eta: b.eta,
        purchased: b.purchasedQuantity,
        allocated: b.allocatedQuantity,
      })),
  )
  await sql`
    insert into batches (ref, sku, eta, purchased, allocated)
    select u.e->>'ref', u.e->>'sku', (u.e->>'eta')::date, (u.e->>'purchased')::int, (u.e->>'allocated')::int
    from jsonb_array_elements(${json(batches)}) with ordinality as u(e, n)
    order by u.n`.execute(db)
  const events: DomainEvent[] = changes.flatMap(({ product }) => product.events.splice(0))
  const { rows } = await sql<{ id: number | string }>`
    with events as (
      insert into outbox (sku, type, payload)
      select u.e->>'sku', u.e->>'type', u.e
      from jsonb_array_elements(${json(events)}) with ordinality as u(e, n)
      order by u.n
      returning id, sku
    ), ${PENDING_DELIVERIES}
    select id from events`.execute(db)
  const ids = rows.map((r) => Number(r.id)).sort((a, b) => a - b)
  return ids.map((id, i) => ({ id, event: events[i] as DomainEvent }))
}

/**
 * Many values (rows, lists by key) as one JSON parameter: much cheaper to send and parse than an array per
 * column (PGlite above all).
 */
export function json(value: unknown) {
  return sql`${JSON.stringify(value)}::jsonb`
}
