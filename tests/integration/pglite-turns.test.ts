import { Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type Database, inTurn, openDatabase } from '../../src/adapters/postgres/database.ts'
import { pipelinedPgliteDialect } from '../../src/adapters/postgres/pglite-thread.ts'
import { createDataDir } from '../support/servers.ts'

type Pglite = Parameters<typeof pipelinedPgliteDialect>[0]

describe('statements on the embedded database', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let database: Database

  beforeAll(async () => {
    place = await createDataDir()
    database = openDatabase({ databaseUrl: null, dataDir: place.dir, poolSize: 1 })
    await sql`create table line (n int not null)`.execute(database.db)
  })
  afterAll(async () => {
    await database?.close()
    await place?.drop()
  })

  it('are passed on without waiting for the answer to the one before', async () => {
    const sent: string[] = []
    const answers: Array<() => void> = []
    const pglite: Pglite = {
      closed: false,
      ready: true,
      waitReady: Promise.resolve(),
      query: (text: string) => {
        sent.push(text)
        return new Promise((resolve) => answers.push(() => resolve({ rows: [], affectedRows: 0, fields: [] })))
      },
      transaction: () => Promise.reject(new Error('no transaction here')),
      close: async () => {},
    } as unknown as Pglite
    const db = new Kysely<unknown>({ dialect: pipelinedPgliteDialect(pglite) })
    const both = Promise.all([sql`select 1`.execute(db), sql`select 2`.execute(db)])
    await vi.waitFor(() => expect(sent).toEqual(['select 1', 'select 2']))
    for (const answer of answers) answer()
    await both
  })

  it('of other turns wait for a transaction to end and are not part of it', async () => {
    const release = await database.acquireExclusive()
    const trx = await database.db.startTransaction().execute()
    await sql`insert into line values (1)`.execute(trx)
    const other = inTurn(database, (db) => sql`insert into line values (2)`.execute(db))
    // Time for the other statement to reach the database, were it not waiting for the transaction.
    await new Promise((resolve) => setTimeout(resolve, 50))
    await trx.rollback().execute()
    release()
    await other
    const { rows } = await sql<{ n: number }>`select n from line`.execute(database.db)
    expect(rows).toEqual([{ n: 2 }])
  })

  it('of a turn asked after an exclusive one wait for it, even while shared turns are held', async () => {
    const order: string[] = []
    const shared = await database.acquire()
    const exclusive = database.acquireExclusive().then((release) => {
      order.push('exclusive')
      release()
    })
    const later = database.acquire().then((release) => {
      order.push('later shared')
      release()
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(order).toEqual([])
    shared()
    await Promise.all([exclusive, later])
    expect(order).toEqual(['exclusive', 'later shared'])
  })
})
