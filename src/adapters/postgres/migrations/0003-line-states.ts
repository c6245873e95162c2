import { type Kysely, sql } from 'kysely'

/**
 * A line is allocated, held (with an expiry) or backordered (no batch): one row per (orderid, sku) in
 * any state, kept through its changes so that its id is its place in the backorder queue. Held stock
 * stays in the batch's `allocated`. Partial indexes let the backorder queue be read by qty (only the
 * lines that can fit) and expired holds be found by expiry, neither reading the sku's history.
 *
 * Before, a line taken off a shrunk batch was deleted and allocated again by the delivery of its
 * `Deallocated` event; a crash could leave that delivery undone, and the service no longer does it (a
 * shrink now moves its lines itself). Such lines become backorders here, filled when stock arrives.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('allocations')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('allocated'))
    .addColumn('expires_at', 'timestamptz')
    .execute()
  await db.schema
    .alterTable('allocations')
    .alterColumn('batch_id', (c) => c.dropNotNull())
    .execute()
  await db.schema
    .alterTable('allocations')
    .addCheckConstraint(
      'allocations_state_check',
      sql`(status = 'allocated' and batch_id is not null and expires_at is null)
        or (status = 'held' and batch_id is not null and expires_at is not null)
        or (status = 'backordered' and batch_id is null and expires_at is null)`,
    )
    .execute()
  await db.schema
    .createIndex('allocations_waiting_idx')
    .on('allocations')
    .columns(['sku', 'qty', 'id'])
    .where(sql.ref('status'), '=', 'backordered')
    .execute()
  await db.schema
    .createIndex('allocations_held_expiry_idx')
    .on('allocations')
    .columns(['expires_at'])
    .where(sql.ref('status'), '=', 'held')
    .execute()
  await sql`
    with stranded as (
      insert into allocations (orderid, sku, qty, status)
      select distinct on (payload->>'orderid', sku) payload->>'orderid', sku, (payload->>'qty')::int, 'backordered'
      from outbox
      where type = 'Deallocated' and payload->>'reason' = 'batch-shrunk' and delivered_at is null
      order by payload->>'orderid', sku, id
      on conflict (orderid, sku) do nothing
      returning sku
    )
    update products set version_number = version_number + 1 where sku in (select sku from stranded)`.execute(db)
  await db.schema
    .createIndex('allocations_held_sku_idx')
    .on('allocations')
    .columns(['sku'])
    .where(sql.ref('status'), '=', 'held')
    .execute()
}
