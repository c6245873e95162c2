import { type Kysely, sql } from 'kysely'

/**
 * No statistics on the outbox's payloads: no statement filters or joins on them, and computing them is
 * most of what analyzing the outbox costs (JSON values sampled, compared and sorted). The embedded
 * database's upkeep analyzed the outbox in 317 to 388 ms with the database taken; a server's autovacuum
 * spends the same CPU.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table outbox alter column payload set statistics 0`.execute(db)
}
