import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

/** The PostgreSQL server the tests use; each test file gets a database of its own on it. */
export const postgresUrl =
  process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/**
 * Whether a server answers. Under `CI` a missing server is a failure, never a skip; on a developer
 * machine the caller skips with one line saying why.
 */
export async function serverAvailable(name: string, probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe()
    return true
  } catch (error) {
    if (process.env.CI) throw new Error(`${name} is required under CI but did not answer: ${String(error)}`)
    console.warn(`Skipping ${name} tests: ${name} did not answer (${String(error)})`)
    return false
  }
}

export function postgresAvailable(): Promise<boolean> {
  return serverAvailable('PostgreSQL', async () => {
    const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 2000 })
    await client.connect()
    await client.end()
  })
}

/** A new, empty database on the server; `drop` removes it. */
export async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `allocation_test_${randomUUID().replaceAll('-', '')}`
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(postgresUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

/** A new directory for an embedded PGlite database; `drop` removes it. */
export async function createDataDir(): Promise<{ dir: string; drop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'allocation-test-'))
  return { dir, drop: () => rm(dir, { recursive: true, force: true }) }
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgresUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}
