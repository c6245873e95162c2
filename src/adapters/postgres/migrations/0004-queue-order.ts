import { type Kysely, sql } from 'kysely'

/**
 * The backorder queue indexed in its own order (oldest first per sku): filling reads the oldest waiting
 * lines and stops as soon as it has as many as the stock could take, whatever the queue's length. The
 * index by qty it replaces gave every fitting line, all to be sorted before the first could be taken.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('allocations_queue_idx')
    .on('allocations')
    .columns(['sku', 'id'])
    .where(sql.ref('status'), '=', 'backordered')
    .execute()
  await db.schema.dropIndex('allocations_waiting_idx').execute()
}
