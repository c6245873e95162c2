import { fdatasyncSync } from 'node:fs'
import { PGlite } from '@electric-sql/pglite'
import { Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase } from '../../src/adapters/postgres/database.ts'
import { DurableNodeFS } from '../../src/adapters/postgres/durable-node-fs.ts'
import { pgliteSettings } from '../../src/adapters/postgres/pglite-settings.ts'
import {
  type EmbeddedDatabase,
  pgliteThread,
  pipelinedPgliteDialect,
} from '../../src/adapters/postgres/pglite-thread.ts'
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

  it('durable() writes nothing when everything is already on disk', async () => {
    await database.durable()
    const before = await log()
    await database.durable()
    expect(await log()).toEqual({ ...before, behind: false })
  })
})

/**
 * The thread answers statements in the order they were sent, so a flush sent and not yet answered covers
 * every statement answered before a caller asks: the caller shares it.
 */
describe('flushes of the embedded database', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let pglite: EmbeddedDatabase
  let db: Kysely<unknown>

  const written = async () => {
    const { rows } = await sql<{ lsn: string }>`select pg_current_wal_insert_lsn()::text as lsn`.execute(db)
    return rows[0]?.lsn as string
  }
  const onDisk = async (lsn: string) => {
    const { rows } = await sql<{
      flushed: boolean
    }>`select pg_current_wal_flush_lsn() >= ${lsn}::pg_lsn as flushed`.execute(db)
    return rows[0]?.flushed
  }

  beforeAll(async () => {
    place = await createDataDir()
    pglite = pgliteThread({ dataDir: place.dir, postgresqlConf: ['synchronous_commit=off'], initialMemoryBytes: null })
    db = new Kysely<unknown>({ dialect: pipelinedPgliteDialect(pglite) })
    await sql`CREATE TABLE line (qty int)`.execute(db)
  })
  afterAll(async () => {
    await db?.destroy()
    await place?.drop()
  })

  it('sends one flush for the callers that ask before it is answered', async () => {
    await sql`INSERT INTO line VALUES (1)`.execute(db)
    const lsn = await written()
    const sent = pglite.flushesSent
    await Promise.all([pglite.flush(), pglite.flush(), pglite.flush()])
    expect(pglite.flushesSent - sent).toBe(1)
    expect(await onDisk(lsn)).toBe(true)
  })

  it('sends one flush for the callers that ask while a transaction holds the database, once it ends', async () => {
    const sent = pglite.flushesSent
    const trx = await db.startTransaction().execute()
    await sql`INSERT INTO line VALUES (2)`.execute(trx)
    const callers = [pglite.flush(), pglite.flush(), pglite.flush()]
    await trx.commit().execute()
    const lsn = await written()
    await Promise.all(callers)
    expect(pglite.flushesSent - sent).toBe(1)
    expect(await onDisk(lsn)).toBe(true)
  })

  it('sends another flush for a commit answered after the flush on its way', async () => {
    const sent = pglite.flushesSent
    const first = pglite.flush()
    await sql`INSERT INTO line VALUES (3)`.execute(db)
    const lsn = await written()
    expect(await onDisk(lsn)).toBe(false)
    await pglite.flush()
    expect(pglite.flushesSent - sent).toBe(2)
    expect(await onDisk(lsn)).toBe(true)
    await first
  })
})
