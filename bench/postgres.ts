import pg from 'pg'

/** The PostgreSQL server the bench creates its databases on (a maintenance database of it). */
export const defaultPostgresUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export type Row = Record<string, unknown>

/** Runs one statement on a short-lived connection. */
export async function query(url: string, text: string, params: unknown[] = []): Promise<Row[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text, params)).rows
  } finally {
    await client.end()
  }
}

/** The URL of another database on the same server. */
export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}

export type ScratchDatabase = Readonly<{ name: string; url: string; drop(): Promise<void> }>

/** A new empty database named `<prefix>_<stamp>`; `drop` removes it, even with connections left open. */
export async function createDatabase(serverUrl: string, prefix: string, stamp: string): Promise<ScratchDatabase> {
  const name = `${prefix}_${stamp}`
  await query(serverUrl, `CREATE DATABASE ${name}`)
  return {
    name,
    url: databaseUrl(serverUrl, name),
    drop: async () => {
      await query(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    },
  }
}

/** Server processes working for `database`, and the server's own background processes. */
export async function serverPids(serverUrl: string, database: string): Promise<number[]> {
  const rows = await query(serverUrl, 'SELECT pid FROM pg_stat_activity WHERE datname = $1 OR datname IS NULL', [
    database,
  ])
  return rows.map((row) => Number(row.pid))
}

export async function serverVersion(serverUrl: string): Promise<string> {
  const [row] = await query(serverUrl, 'SHOW server_version')
  return String(row?.server_version)
}

export type DatabaseActivity = Readonly<{ commits: number; rollbacks: number; deadlocks: number }>

/** The server's counters for one database; they lag up to a second behind its busy sessions. */
export async function databaseActivity(serverUrl: string, database: string): Promise<DatabaseActivity> {
  const [row = {}] = await query(
    serverUrl,
    'SELECT xact_commit AS commits, xact_rollback AS rollbacks, deadlocks FROM pg_stat_database WHERE datname = $1',
    [database],
  )
  return { commits: Number(row.commits), rollbacks: Number(row.rollbacks), deadlocks: Number(row.deadlocks) }
}
