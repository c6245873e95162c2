import { afterAll, beforeAll } from 'vitest'
import { type Database, openDatabase } from '../../src/adapters/postgres/database.ts'
import { migrateToLatest } from '../../src/adapters/postgres/migrator.ts'
import { bootstrap, type Overrides, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { createDatabase, createDataDir, postgresAvailable } from '../support/servers.ts'

export type Mode = 'pglite' | 'postgres'
export const modes: Mode[] = ['pglite', 'postgres']

export type TestDatabase = {
  database: Database
  /** Every statement run since the last `statements.length = 0` (the embedded database's flushes are not statements of Kysely's). */
  statements: string[]
  drop(): Promise<void>
}

/** A migrated, empty database in `mode`, or `null` when the server is missing on a developer machine. */
export async function openTestDatabase(mode: Mode, poolSize = 10): Promise<TestDatabase | null> {
  if (mode === 'postgres' && !(await postgresAvailable())) return null
  const statements: string[] = []
  const place = mode === 'postgres' ? await createDatabase() : await createDataDir()
  const database = openDatabase({
    databaseUrl: 'url' in place ? place.url : null,
    dataDir: 'dir' in place ? place.dir : '',
    poolSize,
    onQuery: (sql) => statements.push(sql),
    onConnectionError: () => {},
  })
  await migrateToLatest(database.db)
  return {
    database,
    statements,
    async drop() {
      await database.close()
      await place.drop()
    },
  }
}

/** The real service (real bus, handlers and adapters) over a test database, quiet. */
export function serviceOn(database: Database, overrides: Overrides = {}): Service {
  return bootstrap(loadConfig({ LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' }), { database, ...overrides })
}

/** The HTTP app over the real service on a new PGlite database, for `inject`: opened before the file's tests, closed after. */
export function appOnPglite(): () => App {
  let test: TestDatabase | null
  let service: Service
  let app: App
  beforeAll(async () => {
    test = await openTestDatabase('pglite')
    service = serviceOn(test?.database as Database)
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await test?.drop()
  })
  return () => app
}
