import { sql } from 'kysely'
import { type Database, inTurn } from './database.ts'
import { pendingMigrations } from './migrator.ts'

/** `ok`, or why the database cannot serve: it does not answer, or its schema is behind this code. */
export async function databaseCheck(database: Database): Promise<string> {
  try {
    const pending = await inTurn(database, pendingMigrations)
    return pending.length === 0 ? 'ok' : `migrations not run: ${pending.join(', ')}`
  } catch (error) {
    return `not answering: ${(error as Error).message}`
  }
}

export type OutboxBacklog = Readonly<{ undelivered: number; oldestSeconds: number; oldestKeptSeconds: number }>

/**
 * Events not yet delivered and the age of the oldest, and the age of the oldest event the outbox keeps
 * (what retention removes next); reads only the pending deliveries, their events and the first outbox row.
 */
export async function outboxBacklog(database: Database): Promise<OutboxBacklog> {
  const { rows } = await inTurn(database, (db) =>
    sql<{
      undelivered: number
      oldest_seconds: number | null
      oldest_kept_seconds: number | null
    }>`
    select count(*)::int as undelivered, extract(epoch from now() - min(o.created_at))::float8 as oldest_seconds,
           (select extract(epoch from now() - created_at)::float8 from outbox order by id limit 1) as oldest_kept_seconds
    from pending_deliveries p join outbox o on o.id = p.id`.execute(db),
  )
  const row = rows[0]
  return {
    undelivered: row?.undelivered ?? 0,
    oldestSeconds: row?.oldest_seconds ?? 0,
    oldestKeptSeconds: row?.oldest_kept_seconds ?? 0,
  }
}
