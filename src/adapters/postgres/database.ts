import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { pgliteThread, pipelinedPgliteDialect } from './pglite-thread.ts'
import { asUnavailable, preparedQuery, preparingPool } from './prepared-client.ts'
import type { Schema } from './schema.ts'
import { typeParser } from './type-parsers.ts'

export type DatabaseSettings = Readonly<{
  /** PostgreSQL server; without it the embedded PGlite under `dataDir` is used. */
  databaseUrl: string | null
  dataDir: string
  poolSize: number
  /** Bound on waiting for a new connection, or for a free one when the pool is busy (default 3000). */
  connectTimeoutMs?: number
  /** Bound on one statement, enforced by the server and by the client waiting for its answer (default 5000; 0: none). */
  statementTimeoutMs?: number
  /** Called with the SQL of every statement the query builder runs. */
  onQuery?: (sql: string) => void
  /**
   * Called when a server connection breaks (server restart, failover, a cut network), idle or in use. The
   * pool replaces it; without a listener node-postgres would crash the process.
   */
  onConnectionError?: (error: Error) => void
}>

export interface Database {
  readonly mode: 'postgres' | 'pglite'
  readonly db: Kysely<Schema>
  /**
   * A turn for statements outside a transaction; resolves with the function that gives it back. Where the
   * database has a single connection (PGlite), the statements of concurrent turns go to it in the order
   * they are made, without waiting for each other's answers, and no turn is granted while a transaction
   * holds it. Resolves at once with a server's pool.
   */
  acquire(): Promise<() => void>
  /** The database to itself, for a transaction, where it has a single connection; at once with a server's pool. */
  acquireExclusive(): Promise<() => void>
  /**
   * Resolves once every commit made before the call is on disk: call it before acting on a commit or a
   * read (answering, publishing). A server's commits already are. The embedded database commits without
   * waiting for the disk, and a flush on its way serves every caller who asks before it is answered (group
   * commit).
   */
  durable(): Promise<void>
  /**
   * Runs one statement outside any transaction and resolves with its rows once every commit it may have
   * read is durable. With a server it goes straight to the pool, around the query builder's connection
   * handling, which cost the service more than the database's answer to the reads behind every request.
   */
  select<R>(query: CompiledQuery<R>): Promise<R[]>
  /** Connections of a server's pool; `null` for the embedded database. */
  poolStats(): PoolStats | null
  close(): Promise<void>
}

/**
 * Every statement is prepared and keeps its shape whatever its parameters (arrays rather than lists,
 * literals where a partial index must apply), so one plan per connection serves it. Left to choose, once
 * the allocations table holds history the server plans the save afresh on every call (a plan for one
 * line looks cheaper than one for any number): allocating with history ran at 0.57x and 0.77x of a fresh
 * database, and at 0.99x and 1.02x planned once (`BENCH_ONLY=history npm run bench`). Measured alone, a
 * save planned each time took 605 to 725 µs of the server's CPU, and 285 to 305 µs planned once.
 */
const PLAN_CACHE_MODE = 'force_generic_plan'

/**
 * PGlite's buffer cache (128 MB by default) is memory the process keeps once touched; 8 MB holds the hot
 * rows of a thousand or so skus, and a page it misses is read from the data directory (through the
 * operating system's cache) instead. Under the bench's embedded load, 8 MB against 16 MB: peak RSS
 * 276-279 MB against 291-295 MB, 891-892 allocations/s against 881-949/s.
 */
const PGLITE_CONF = [
  'shared_buffers=8MB',
  `plan_cache_mode=${PLAN_CACHE_MODE}`,
  // PGlite has one connection, so commits flushed one by one never share a flush; `durable()` flushes them.
  'synchronous_commit=off',
]

/** Runs `work` in a turn on the database (`Database.acquire`). */
export async function inTurn<T>(database: Database, work: (db: Kysely<Schema>) => Promise<T>): Promise<T> {
  const release = await database.acquire()
  return work(database.db).finally(release)
}

/**
 * Runs `work` in a turn on the database, and resolves once every commit before its end is on disk: its
 * own, and any of others' it may have read.
 */
export async function runDurably<T>(database: Database, work: (db: Kysely<Schema>) => Promise<T>): Promise<T> {
  const result = await inTurn(database, work)
  await database.durable()
  return result
}

export type PoolStats = Readonly<{ total: number; idle: number; waiting: number; max: number }>

export function openDatabase(settings: DatabaseSettings): Database {
  const log = settings.onQuery
    ? (event: { level: string; query: { sql: string } }) => settings.onQuery?.(event.query.sql)
    : undefined
  if (settings.databaseUrl) {
    const statementTimeout = settings.statementTimeoutMs ?? 5000
    const pool = new pg.Pool({
      connectionString: settings.databaseUrl,
      max: settings.poolSize,
      connectionTimeoutMillis: settings.connectTimeoutMs ?? 3000,
      // A server that stops answering without closing the connection is noticed by the client too.
      ...(statementTimeout > 0 && { statement_timeout: statementTimeout, query_timeout: statementTimeout + 1000 }),
      keepAlive: true,
      types: { getTypeParser: typeParser },
      // Set by a statement, the first on the connection, rather than as a startup option, which connection
      // poolers in front of PostgreSQL often refuse. The pool hands the connection out once it is done, so
      // no statement queues behind it. Should it fail, the server plans as it would.
      onConnect: (client) =>
        client.query(`SET plan_cache_mode = ${PLAN_CACHE_MODE}`).then(
          () => {},
          () => {},
        ),
    })
    // The pool listens to idle connections only; a connection in use that breaks would emit 'error' with
    // no listener and end the process. Each connection gets a listener for its whole life instead.
    pool.on('connect', (client) => client.on('error', (error) => settings.onConnectionError?.(error)))
    pool.on('error', () => {})
    const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }), ...(log && { log }) })
    return {
      mode: 'postgres',
      db,
      acquire: async () => () => {},
      acquireExclusive: async () => () => {},
      durable: async () => {},
      async select<R>(query: CompiledQuery<R>) {
        settings.onQuery?.(query.sql)
        try {
          return (await pool.query(preparedQuery(query.sql, query.parameters))).rows as R[]
        } catch (error) {
          throw asUnavailable(error)
        }
      },
      poolStats: () => ({
        total: pool.totalCount,
        idle: pool.idleCount,
        waiting: pool.waitingCount,
        max: settings.poolSize,
      }),
      close: () => db.destroy(),
    }
  }
  mkdirSync(settings.dataDir, { recursive: true })
  const unlock = lockDataDir(settings.dataDir)
  const pglite = pgliteThread({ dataDir: settings.dataDir, postgresqlConf: PGLITE_CONF, initialMemoryBytes: null })
  const db = new Kysely<Schema>({ dialect: pipelinedPgliteDialect(pglite), ...(log && { log }) })
  const turns = createTurns()
  let open = true
  const database: Database = {
    mode: 'pglite',
    db,
    acquire: turns.shared,
    acquireExclusive: turns.exclusive,
    durable: () => pglite.flush(),
    select: async (query) => (await runDurably(database, (db) => db.executeQuery(query))).rows,
    poolStats: () => null,
    async close() {
      const release = await turns.exclusive()
      try {
        // PostgreSQL's shutdown checkpoint would flush the log too; this does not depend on it.
        if (open) await pglite.flush()
      } finally {
        open = false
        try {
          await db.destroy()
        } finally {
          unlock()
          release()
        }
      }
    },
  }
  return database
}

/** Another live process has the embedded database open. */
export class DatabaseInUse extends Error {
  override readonly name = 'DatabaseInUse'
}

/**
 * PGlite is one process's database: a second process opening the same directory would corrupt it. The
 * lock file names the owner; one left by a process that died is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  const file = join(dataDir, 'allocation.pid')
  const owner = Number(existsSync(file) ? readFileSync(file, 'utf8') : Number.NaN)
  if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
    throw new DatabaseInUse(
      `The embedded database in ${dataDir} is in use by process ${owner}; stop it first, or use DATABASE_URL`,
    )
  }
  writeFileSync(file, String(process.pid))
  return () => rmSync(file, { force: true })
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Shared and exclusive turns, granted in the order asked: a shared turn waits only for an exclusive one
 * asked before it, an exclusive turn for every turn asked before it. Each resolves with its release.
 */
function createTurns(): { shared: () => Promise<() => void>; exclusive: () => Promise<() => void> } {
  type Asking = Readonly<{ exclusive: boolean; grant: () => void }>
  const asking: Asking[] = []
  let shared = 0
  let exclusive = false
  const grant = () => {
    for (let next = asking[0]; next && !exclusive; next = asking[0]) {
      if (next.exclusive && shared > 0) return
      if (next.exclusive) exclusive = true
      else shared += 1
      asking.shift()
      next.grant()
    }
  }
  const take = (wantsExclusive: boolean) =>
    new Promise<() => void>((resolve) => {
      let released = false
      const release = () => {
        if (released) return
        released = true
        if (wantsExclusive) exclusive = false
        else shared -= 1
        grant()
      }
      asking.push({ exclusive: wantsExclusive, grant: () => resolve(release) })
      grant()
    })
  return { shared: () => take(false), exclusive: () => take(true) }
}
