import { sql } from 'kysely'
import { type Database, inTurn } from './database.ts'
import { pendingMigrations } from './migrator.ts'

/** `ok`, or why the database cannot serve: it does not answer, or its schema is behind this code. */
export async function databaseCheck(database: Database): Promise<string> {
  try {
    const pending = await inTurn(database, pendingMigrations)
    return pending.length === 0 ? 'ok' : `migrations not run: ${pending.join(', ')}`
  } catch (error) {
    return `not answering: ${reasonOf(error)}`
  }
}

/**
 * Why the database did not serve, by the error's code: never its message, which names the database's
 * address and the role refused, for anyone who reaches the open `/ready`.
 */
function reasonOf(error: unknown): string {
  const code = codeOf(error)
  if (code === undefined) return 'the database did not answer'
  if (code === 'ECONNREFUSED') return 'the database refused the connection (ECONNREFUSED)'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `the database's host name did not resolve (${code})`
  if (code.startsWith('28')) return `the database refused the service's login (${code})`
  if (code === '3D000') return 'the database named does not exist (3D000)'
  return `the database failed (${code})`
}

/** The first code in the error or its causes: a system error's (`ECONNREFUSED`) or PostgreSQL's SQLSTATE. */
function codeOf(error: unknown): string | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    const { code } = e as { code?: unknown }
    if (typeof code === 'string' && code !== '') return code
  }
  return undefined
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
