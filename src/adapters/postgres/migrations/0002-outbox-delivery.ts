import { type Kysely, sql } from 'kysely'

/**
 * Delivery scheduling for the outbox sweep, the transaction id that lets readers page through events
 * without missing one committed late, and the ids of outside messages already handled.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('outbox')
    .addColumn('due_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now() + interval '5 seconds'`))
    .addColumn('xid', sql`xid8`, (c) => c.notNull().defaultTo(sql`pg_current_xact_id()`))
    .execute()
  await db.schema.dropIndex('outbox_undelivered_idx').execute()
  await db.schema
    .createIndex('outbox_due_idx')
    .on('outbox')
    .columns(['due_at', 'id'])
    .where(sql.ref('delivered_at'), 'is', null)
    .execute()

  await db.schema
    .createTable('handled_messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('handled_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
}
