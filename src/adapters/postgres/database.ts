import { mkdirSync } from 'node:fs'
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite'
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely'
import pg from 'pg'
import { preparingPool } from './prepared-client.ts'
import type { Schema } from './schema.ts'

export type DatabaseSettings = Readonly<{
  /** PostgreSQL server; without it the embedded PGlite under `dataDir` is used. */
  databaseUrl: string | null
  dataDir: string
  poolSize: number
  /** Called with the SQL of every statement the query builder runs (BEGIN and COMMIT excluded). */
  onQuery?: (sql: string) => void
}>

export interface Database {
  readonly mode: 'postgres' | 'pglite'
  readonly db: Kysely<Schema>
  /**
   * Takes the database for one transaction where the driver has a single connection (PGlite), and
   * resolves at once with a server's pool. Returns the function that gives it back.
   */
  acquire(): Promise<() => void>
  close(): Promise<void>
}

const INT8 = 20
const DATE = 1082
const asText = (value: string) => value

export function openDatabase(settings: DatabaseSettings): Database {
  const log = settings.onQuery
    ? (event: { level: string; query: { sql: string } }) => settings.onQuery?.(event.query.sql)
    : undefined
  if (settings.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: settings.databaseUrl,
      max: settings.poolSize,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8
            ? Number
            : oid === DATE
              ? asText
              : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    })
    const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }), ...(log && { log }) })
    return { mode: 'postgres', db, acquire: async () => () => {}, close: () => db.destroy() }
  }
  mkdirSync(settings.dataDir, { recursive: true })
  const pglite = new PGlite({
    dataDir: settings.dataDir,
    parsers: { [pgliteTypes.INT8]: Number, [pgliteTypes.DATE]: asText },
  })
  const db = new Kysely<Schema>({ dialect: new PGliteDialect({ pglite }), ...(log && { log }) })
  const mutex = createMutex()
  return {
    mode: 'pglite',
    db,
    acquire: mutex,
    async close() {
      const release = await mutex()
      try {
        await db.destroy()
      } finally {
        release()
      }
    },
  }
}

/** First come, first served; resolves with the release function. */
function createMutex(): () => Promise<() => void> {
  let tail: Promise<void> = Promise.resolve()
  return () => {
    let release!: () => void
    const turn = new Promise<void>((resolve) => {
      release = resolve
    })
    const ready = tail.then(() => release)
    tail = tail.then(() => turn)
    return ready
  }
}
