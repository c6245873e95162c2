import { type Kysely, sql } from 'kysely'

/**
 * Delivered events older than the retention period are removed from the outbox; this one row says up to
 * which id they have been, so that a reader asking for events after an older id is told that some are
 * gone rather than given the rest as if nothing were missing (ids have gaps, so the oldest kept id
 * cannot tell). 0 until something is removed. The ids of handled messages are removed after the same
 * period, oldest first, by the index added here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('outbox_horizon')
    .addColumn('one', 'boolean', (c) => c.primaryKey().defaultTo(true).check(sql`one`))
    .addColumn('pruned_through', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
  await sql`insert into outbox_horizon (one) values (true)`.execute(db)
  await db.schema.createIndex('handled_messages_handled_at_idx').on('handled_messages').column('handled_at').execute()
}
