import { type Kysely, type RawBuilder, sql } from 'kysely'
import { compiledOnce } from './compiled-once.ts'
import { type CachedProduct, cachedBatches } from './product-cache.ts'
import type { Schema } from './schema.ts'

export type SaveParameters = Readonly<{
  sku: string
  from: number
  to: number
  batchIds: number[]
  purchased: number[]
  allocated: number[]
  etas: Array<string | null>
  removed: string[]
  changedOrderids: string[]
  changedQtys: number[]
  changedStatuses: string[]
  changedBatchIds: Array<number | null>
  changedExpiries: Array<string | null>
  /** Whether each changed line was placed on its batch anew (it then gets its `placed` from the ids' sequence). */
  changedPlaced: boolean[]
  addedOrderids: string[]
  addedQtys: number[]
  addedStatuses: string[]
  addedBatchIds: Array<number | null>
  addedExpiries: Array<string | null>
  /** The events, as one JSON array. */
  events: string
  messageIds: readonly string[]
  assumedNew: readonly string[]
}>

/**
 * The WITH part that gives each event written by a part named `events` (returning `id, sku`) its pending
 * delivery, in the same statement: no event is committed without it.
 */
export const PENDING_DELIVERIES = sql`pending as (insert into pending_deliveries (id, sku) select id, sku from events)`

/** The order in which a save's parameters are placed in its compiled statement. */
const PARAMETERS = [
  'sku',
  'from',
  'to',
  'batchIds',
  'purchased',
  'allocated',
  'etas',
  'removed',
  'changedOrderids',
  'changedQtys',
  'changedStatuses',
  'changedBatchIds',
  'changedExpiries',
  'changedPlaced',
  'addedOrderids',
  'addedQtys',
  'addedStatuses',
  'addedBatchIds',
  'addedExpiries',
  'events',
  'messageIds',
  'assumedNew',
] as const satisfies ReadonlyArray<keyof SaveParameters>

/** `current`, only when the guard failed: the product as the statement found it, for the retry. */
type Saved = { saved: boolean; event_ids: Array<number | string>; current: CachedProduct | null }

/**
 * One statement whatever the change, every part guarded by the version update, in one of two shapes
 * that never vary, so each is prepared once per connection; arrays keep each part on its index whatever
 * their length. The common change, new lines with their batches and events, leaves out the parts for
 * lines removed or changed and for messages handled: run on empty arrays, they cost the embedded
 * database about 9% of its allocations per second. Each shape is built and compiled once, and each save
 * puts its parameters in their places: building and compiling it on every save were a sixth of the
 * service's instructions per allocation.
 */
export function save(db: Kysely<Schema>, p: SaveParameters): Promise<Saved[]> {
  const full = p.removed.length > 0 || p.changedOrderids.length > 0 || p.messageIds.length > 0
  return (full ? saveAll : saveCommon)(db, ...PARAMETERS.map((name) => p[name]))
}

const shape = (full: boolean) =>
  compiledOnce<unknown[], Saved>(PARAMETERS.length, (db, ...values) => {
    // The values are compiledOnce's stand-ins, one per parameter, in the order of PARAMETERS.
    const p = Object.fromEntries(PARAMETERS.map((name, i) => [name, values[i]])) as SaveParameters
    const parts = full
      ? [version(p), changedBatches(p), removed(p), changedLines(p), added(p), events(p), messages(p)]
      : [version(p), changedBatches(p), added(p), events(p)]
    const statement = sql<Saved>`
    with ${sql.join(parts)}
    select exists (select from version) as saved, array(select id from events order by id) as event_ids,
      case when not exists (select from version) then (
        select json_build_object('versionNumber', p.version_number, 'batches', ${cachedBatches})
        from products p where p.sku = ${p.sku}
      ) end as current`
    return { compile: () => statement.compile(db) }
  })

const saveAll = shape(true)
const saveCommon = shape(false)

type Part = (p: SaveParameters) => RawBuilder<unknown>

const version: Part = (p) => sql`version as (
      update products set version_number = ${p.to}
      where sku = ${p.sku} and version_number = ${p.from}
        and not exists (select from allocations where orderid = any(${p.assumedNew}::text[]) and sku = ${p.sku})
      returning sku
    )`

const changedBatches: Part = (p) => sql`changed_batches as (
      update batches set purchased = u.purchased, allocated = u.allocated, eta = u.eta
      from unnest(${p.batchIds}::bigint[], ${p.purchased}::int[], ${p.allocated}::int[], ${p.etas}::date[])
        as u(id, purchased, allocated, eta)
      where batches.sku = ${p.sku} and batches.id = u.id and batches.id = any(${p.batchIds}::bigint[])
        and exists (select from version)
    )`

const removed: Part = (p) => sql`removed as (
      delete from allocations
      where sku = ${p.sku} and orderid = any(${p.removed}::text[]) and exists (select from version)
    )`

const changedLines: Part = (p) => sql`changed_lines as (
      update allocations set qty = u.qty, status = u.status, batch_id = u.batch_id, expires_at = u.expires_at,
        placed = case when u.placed then nextval('allocations_id_seq') else allocations.placed end
      from unnest(
        ${p.changedOrderids}::text[], ${p.changedQtys}::int[], ${p.changedStatuses}::text[],
        ${p.changedBatchIds}::bigint[], ${p.changedExpiries}::timestamptz[], ${p.changedPlaced}::bool[]
      ) as u(orderid, qty, status, batch_id, expires_at, placed)
      where allocations.sku = ${p.sku} and allocations.orderid = u.orderid
        and allocations.orderid = any(${p.changedOrderids}::text[]) and exists (select from version)
    )`

const added: Part = (p) => sql`added as (
      insert into allocations (orderid, sku, qty, status, batch_id, expires_at)
      select u.orderid, ${p.sku}, u.qty, u.status, u.batch_id, u.expires_at
      from unnest(
        ${p.addedOrderids}::text[], ${p.addedQtys}::int[], ${p.addedStatuses}::text[], ${p.addedBatchIds}::bigint[],
        ${p.addedExpiries}::timestamptz[]
      ) with ordinality as u(orderid, qty, status, batch_id, expires_at, n)
      where exists (select from version)
      order by u.n
    )`

const events: Part = (p) => sql`events as (
      insert into outbox (sku, type, payload)
      select ${p.sku}, u.payload->>'type', u.payload
      from jsonb_array_elements(${p.events}::jsonb) with ordinality as u(payload, n)
      where exists (select from version)
      order by u.n
      returning id, sku
    ), ${PENDING_DELIVERIES}`

const messages: Part = (p) => sql`messages as (
      insert into handled_messages (id) select unnest(${p.messageIds}::text[]) where exists (select from version)
    )`
