import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compiledOnce, selectedOnce } from '../../src/adapters/postgres/compiled-once.ts'
import { type Mode, modes, openTestDatabase, type TestDatabase } from './support.ts'

describe.each(modes)('queries compiled once (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  beforeAll(async () => {
    test = await openTestDatabase(mode)
  })
  afterAll(async () => test?.drop())

  // Arguments used out of order and twice, beside a value of the query's own.
  const pick = compiledOnce(2, (db, skus: string[], min: number) =>
    db
      .selectFrom('products')
      .select('sku')
      .where('version_number', '>=', min)
      .where('version_number', '<', sql<number>`${min}::int + ${10}::int`)
      .where('sku', '=', sql<string>`any(${skus}::text[])`)
      .orderBy('sku'),
  )

  it('runs one unchanging statement with the arguments of each call, in their places', async () => {
    if (!test) throw new Error(`${mode} did not open`)
    const { database, statements } = test
    await database.db
      .insertInto('products')
      .values([
        { sku: 'ONCE-A', version_number: 1 },
        { sku: 'ONCE-B', version_number: 5 },
        { sku: 'ONCE-C', version_number: 20 },
      ])
      .execute()
    expect(await pick(database.db, ['ONCE-A', 'ONCE-B', 'ONCE-C'], 0)).toEqual([{ sku: 'ONCE-A' }, { sku: 'ONCE-B' }])
    statements.length = 0
    expect(await pick(database.db, ['ONCE-B', 'ONCE-C'], 11)).toEqual([{ sku: 'ONCE-C' }])
    expect(await pick(database.db, ['ONCE-A'], 2)).toEqual([])
    expect(new Set(statements).size).toBe(1)
  })

  // The same, run by Database.select outside any transaction.
  const select = selectedOnce(2, (db, skus: string[], min: number) =>
    db
      .selectFrom('products')
      .select(['sku', 'version_number as version'])
      .where('version_number', '>=', min)
      .where('sku', '=', sql<string>`any(${skus}::text[])`)
      .orderBy('sku'),
  )

  it('answers with the rows committed before it, typed as the query says, from one statement', async () => {
    if (!test) throw new Error(`${mode} did not open`)
    const { database, statements } = test
    await database.db
      .insertInto('products')
      .values([
        { sku: 'SELECT-A', version_number: 1 },
        { sku: 'SELECT-B', version_number: 7 },
      ])
      .execute()
    statements.length = 0
    expect(await select(database, ['SELECT-A', 'SELECT-B', 'SELECT-C'], 0)).toEqual([
      { sku: 'SELECT-A', version: 1 },
      { sku: 'SELECT-B', version: 7 },
    ])
    await database.db.updateTable('products').set({ version_number: 8 }).where('sku', '=', 'SELECT-A').execute()
    expect(await select(database, ['SELECT-A', 'SELECT-B'], 8)).toEqual([{ sku: 'SELECT-A', version: 8 }])
    expect(statements.filter((s) => s.startsWith('select'))).toHaveLength(2)
    expect(new Set(statements.filter((s) => s.startsWith('select'))).size).toBe(1)
  })
})
