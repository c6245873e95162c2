import { type Kysely, sql } from 'kysely'

/** The allocated quantity lives with the batch so that allocating never reads a sku's history. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('products')
    .addColumn('sku', 'text', (c) => c.primaryKey())
    .addColumn('version_number', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()

  await db.schema
    .createTable('batches')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('ref', 'text', (c) => c.notNull().unique())
    .addColumn('sku', 'text', (c) => c.notNull().references('products.sku'))
    .addColumn('eta', 'date')
    .addColumn('purchased', 'integer', (c) => c.notNull())
    .addColumn('allocated', 'integer', (c) => c.notNull().defaultTo(0))
    .addUniqueConstraint('batches_id_sku_key', ['id', 'sku'])
    .addCheckConstraint('batches_allocated_within_purchased', sql`0 <= allocated and allocated <= purchased`)
    .execute()
  await db.schema.createIndex('batches_sku_idx').on('batches').columns(['sku', 'id']).execute()

  await db.schema
    .createTable('allocations')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('orderid', 'text', (c) => c.notNull())
    .addColumn('sku', 'text', (c) => c.notNull())
    .addColumn('qty', 'integer', (c) => c.notNull().check(sql`qty > 0`))
    .addColumn('batch_id', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('allocations_orderid_sku_key', ['orderid', 'sku'])
    .addForeignKeyConstraint('allocations_batch_fkey', ['batch_id', 'sku'], 'batches', ['id', 'sku'])
    .execute()
  await db.schema.createIndex('allocations_batch_idx').on('allocations').columns(['batch_id', 'id']).execute()

  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('sku', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  await db.schema
    .createIndex('outbox_undelivered_idx')
    .on('outbox')
    .column('id')
    .where(sql.ref('delivered_at'), 'is', null)
    .execute()
}
