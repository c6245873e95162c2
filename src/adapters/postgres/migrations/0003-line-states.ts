import { type Kysely, sql } from 'kysely'

/**
 * A line is allocated, held (with an expiry) or backordered (no batch): one row per (orderid, sku) in
 * any state, kept through its changes so that its id is its place in the backorder queue. Held stock
 * stays in the batch's `allocated`. Partial indexes let the backorder queue be read by qty (only the
 * lines that can fit) and expired holds be found by expiry, neither reading the sku's history.
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
  await db.schema
    .createIndex('allocations_held_sku_idx')
    .on('allocations')
    .columns(['sku'])
    .where(sql.ref('status'), '=', 'held')
    .execute()
}
