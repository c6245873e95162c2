import { type Kysely, sql } from 'kysely'

/**
 * When a batch shrinks, its most recently allocated lines leave first. A line placed on its batch after it
 * was accepted (a backorder filled, a line moved off another batch) is newer there than its id says: it
 * gets `placed`, from the ids' sequence, and the partial index gives a batch's such lines newest first.
 * Every other line was placed when it was accepted (`placed` null: its id), so the column and the index
 * cost nothing on the allocation path.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('allocations').addColumn('placed', 'bigint').execute()
  await db.schema
    .createIndex('allocations_batch_placed_idx')
    .on('allocations')
    .columns(['batch_id', 'placed'])
    .where(sql.ref('placed'), 'is not', null)
    .execute()
}
