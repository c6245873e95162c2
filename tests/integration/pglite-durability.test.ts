import { fdatasyncSync } from 'node:fs'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, FLUSH_STATEMENT, openDatabase } from '../../src/adapters/postgres/database.ts'
import { DurableNodeFS } from '../../src/adapters/postgres/durable-node-fs.ts'
import { pgliteSettings } from '../../src/adapters/postgres/pglite-settings.ts'
import { createDataDir } from '../support/servers.ts'

describe('the embedded database on disk', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let pglite: PGlite
  /** The files flushed so far, one entry a flush. */
  const flushed: number[] = []

  beforeAll(async () => {
    place = await createDataDir()
    const settings = pgliteSettings({ dataDir: place.dir, postgresqlConf: [], initialMemoryBytes: null })
    const fs = new DurableNodeFS(place.dir, (fd) => {
      flushed.push(fd)
      fdatasyncSync(fd)
    })
    pglite = await PGlite.create({ ...settings, fs })
    await pglite.exec('CREATE TABLE line (qty int)')
  })
  afterAll(async () => {
    await pglite?.close()
    await place?.drop()
  })

  it('runs PostgreSQL with fsync on, as the service starts it', async () => {
    expect((await pglite.query('SHOW fsync')).rows).toEqual([{ fsync: 'on' }])
  })

  it('flushes a commit to disk before answering it, and nothing for a read', async () => {
    const before = flushed.length
    await pglite.query('INSERT INTO line VALUES ($1)', [3])
    expect(flushed.length).toBeGreaterThan(before)

    const afterCommit = flushed.length
    await pglite.query('SELECT qty FROM line')
    expect(flushed.length).toBe(afterCommit)
  })
})

/**
 * The service's embedded database commits without waiting for the disk (one connection never shares a
 * flush) and `durable()` flushes the log; the service calls it before acting on what it committed or read.
 */
describe('commits of the embedded database', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let database: Database
  const flushes: string[] = []

  const log = async () => {
    const { rows } = await sql<{ written: string; behind: boolean }>`
      select pg_current_wal_insert_lsn()::text as written,
        pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn() as behind`.execute(database.db)
    return rows[0] as { written: string; behind: boolean }
  }

  beforeAll(async () => {
    place = await createDataDir()
    database = openDatabase({
      databaseUrl: null,
      dataDir: place.dir,
      poolSize: 1,
      onQuery: (statement) => {
        if (statement === FLUSH_STATEMENT) flushes.push(statement)
      },
    })
    await sql`CREATE TABLE line (qty int)`.execute(database.db)
    await database.durable()
  })
  afterAll(async () => {
    await database?.close()
    await place?.drop()
  })

  it('are answered before they are on disk', async () => {
    await sql`INSERT INTO line VALUES (1)`.execute(database.db)
    expect(await log()).toMatchObject({ behind: true })
  })

  it('are all on disk once durable() resolves, however many wait for it', async () => {
    await sql`INSERT INTO line VALUES (2)`.execute(database.db)
    const { written } = await log()
    await Promise.all([database.durable(), database.durable(), database.durable()])
    const { rows } = await sql<{ flushed: boolean }>`
      select pg_current_wal_flush_lsn() >= ${written}::pg_lsn as flushed`.execute(database.db)
    expect(rows).toEqual([{ flushed: true }])
  })

  it('flushes once for all the callers that asked while the database was taken', async () => {
    const release = await database.acquire()
    await sql`INSERT INTO line VALUES (3)`.execute(database.db)
    const callers = [database.durable(), database.durable(), database.durable()]
    flushes.length = 0
    release()
    await Promise.all(callers)
    expect(flushes).toHaveLength(1)
    expect(await log()).toMatchObject({ behind: false })
  })

  it('durable() writes nothing when everything is already on disk', async () => {
    await database.durable()
    const before = await log()
    await database.durable()
    expect(await log()).toEqual({ ...before, behind: false })
  })
})
