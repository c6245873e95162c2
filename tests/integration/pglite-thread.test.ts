import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Kysely, PGliteDialect, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgliteThread } from '../../src/adapters/postgres/pglite-thread.ts'
import { createDataDir } from '../support/servers.ts'

describe('PGlite in a worker thread', () => {
  let dir: Awaited<ReturnType<typeof createDataDir>>
  let db: Kysely<unknown>
  const open = () =>
    new Kysely<unknown>({
      dialect: new PGliteDialect({
        pglite: pgliteThread({ dataDir: dir.dir, postgresqlConf: ['shared_buffers=16MB'], initialMemoryBytes: null }),
      }),
    })

  beforeAll(async () => {
    dir = await createDataDir()
    db = open()
    await sql`create table stock (sku text primary key, qty int not null check (qty >= 0), eta date, big bigint)`.execute(
      db,
    )
  })
  afterAll(async () => {
    await db.destroy()
    await dir.drop()
  })

  it('runs a statement again with other parameters, bigints as numbers and dates as text', async () => {
    const insert = (sku: string, qty: number, eta: string | null) =>
      sql`insert into stock (sku, qty, eta, big) values (${sku}, ${qty}, ${eta}::date, ${qty}::bigint * 1000)`.execute(
        db,
      )
    await insert('LAMP', 3, '2027-01-02')
    await insert('SOFA', 5, null)
    const read = (skus: string[]) =>
      sql<{ sku: string; qty: number; eta: string | null; big: number }>`
        select sku, qty, eta, big from stock where sku = any(${skus}::text[]) order by sku`.execute(db)
    expect((await read(['LAMP'])).rows).toEqual([{ sku: 'LAMP', qty: 3, eta: '2027-01-02', big: 3000 }])
    expect((await read(['LAMP', 'SOFA'])).rows).toEqual([
      { sku: 'LAMP', qty: 3, eta: '2027-01-02', big: 3000 },
      { sku: 'SOFA', qty: 5, eta: null, big: 5000 },
    ])
    const updated = await sql`update stock set qty = qty + ${1} where sku = any(${['LAMP', 'SOFA']}::text[])`.execute(
      db,
    )
    expect(updated.numAffectedRows).toBe(2n)
  })

  it("keeps PostgreSQL's error code and constraint across the thread, and the next statement still runs", async () => {
    const failed = await sql`insert into stock (sku, qty) values (${'LAMP'}, ${1})`.execute(db).catch((e: unknown) => e)
    expect(failed).toMatchObject({ code: '23505', constraint: 'stock_pkey' })
    const negative = await sql`update stock set qty = ${-1} where sku = ${'SOFA'}`.execute(db).catch((e: unknown) => e)
    expect(negative).toMatchObject({ code: '23514' })
    const { rows } = await sql<{ qty: number }>`select qty from stock where sku = ${'SOFA'}`.execute(db)
    expect(rows).toEqual([{ qty: 6 }])
  })

  it('rolls a failed transaction back whole, and a query from outside waits until it ends', async () => {
    const trx = await db.startTransaction().execute()
    await sql`update stock set qty = 0 where sku = ${'LAMP'}`.execute(trx)
    const outside = sql<{ qty: number }>`select qty from stock where sku = ${'LAMP'}`.execute(db)
    const conflict = await sql`insert into stock (sku, qty) values (${'SOFA'}, ${1})`.execute(trx).catch((e) => e)
    expect(conflict).toMatchObject({ code: '23505' })
    await trx.rollback().execute()
    expect((await outside).rows).toEqual([{ qty: 4 }])
  })

  it('keeps what was committed when the database is opened again', async () => {
    await db.destroy()
    db = open()
    const { rows } = await sql<{ sku: string }>`select sku from stock order by sku`.execute(db)
    expect(rows.map((r) => r.sku)).toEqual(['LAMP', 'SOFA'])
  })

  it('says why when it cannot create the database', async () => {
    const file = join(dir.dir, 'a-file')
    await writeFile(file, '')
    const pglite = pgliteThread({ dataDir: join(file, 'db'), postgresqlConf: [], initialMemoryBytes: null })
    await expect(pglite.query('select 1', [])).rejects.toThrow(
      /^Creating the embedded database in .* failed \(exit 1\): ./,
    )
  })
})
