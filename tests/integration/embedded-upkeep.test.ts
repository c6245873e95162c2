import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/adapters/logger.ts'
import { embeddedUpkeep } from '../../src/adapters/postgres/embedded-upkeep.ts'
import { openTestDatabase, type TestDatabase } from './support.ts'

const quiet = createLogger('silent')

type TableStats = { n_dead_tup: number; vacuums: number; analyzes: number }

describe('upkeep of the embedded database (what autovacuum does on a server)', () => {
  let test: TestDatabase | null

  beforeAll(async () => {
    test = await openTestDatabase('pglite')
  })
  afterAll(async () => test?.drop())

  async function stats(table: string): Promise<TableStats> {
    if (!test) throw new Error('no database')
    const { db } = test.database
    await sql`select pg_stat_force_next_flush()`.execute(db)
    const { rows } = await sql<TableStats>`
      select n_dead_tup::int, (vacuum_count + autovacuum_count)::int as vacuums,
             (analyze_count + autoanalyze_count)::int as analyzes
      from pg_stat_user_tables where relname = ${table}`.execute(db)
    if (!rows[0]) throw new Error(`no statistics for ${table}`)
    return rows[0]
  }

  it('vacuums and analyzes a table once its dead rows pass the threshold, and leaves it once done', async () => {
    if (!test) throw new Error('no database')
    const { db } = test.database
    await sql`create table churn (id int primary key, n int not null)`.execute(db)
    await sql`insert into churn select g, 0 from generate_series(1, 1000) g`.execute(db)
    const upkeep = embeddedUpkeep(test.database, quiet)
    await upkeep.sweep()
    const afterInsert = await stats('churn')
    // 1,000 new rows pass the insert threshold (1,000 + 20% of the table, unknown yet) and the analyze one.
    expect(afterInsert.analyzes).toBe(1)

    for (let i = 0; i < 3; i++) await sql`update churn set n = n + 1`.execute(db)
    expect((await stats('churn')).n_dead_tup).toBeGreaterThan(250)
    await upkeep.sweep()
    const afterChurn = await stats('churn')
    expect(afterChurn.n_dead_tup).toBe(0)
    expect(afterChurn.vacuums).toBe(afterInsert.vacuums + 1)

    await sql`update churn set n = n + 1 where id <= 10`.execute(db)
    await upkeep.sweep()
    expect(await stats('churn')).toEqual({ ...afterChurn, n_dead_tup: 10 })
  })

  it('freezes every table past the freeze age, the catalogs included, so no row outlives transaction ids', async () => {
    if (!test) throw new Error('no database')
    const { db } = test.database
    const oldest = async () =>
      (
        await sql<{ age: number }>`
          select max(age(relfrozenxid))::int as age from pg_class where relkind = 'r' and relpersistence = 'p'`.execute(
          db,
        )
      ).rows[0]?.age ?? 0
    // Transactions to age what exists, as a long life of the service would.
    for (let i = 0; i < 20; i++) await sql`select txid_current()`.execute(db)
    expect(await oldest()).toBeGreaterThan(20)
    // By default VACUUM freezes only rows 50 million transactions old; here every row, so that ages fall.
    await sql`set vacuum_freeze_min_age = 0`.execute(db)
    await sql`set vacuum_freeze_table_age = 0`.execute(db)
    try {
      await embeddedUpkeep(test.database, quiet, { freezeMaxAge: 10 }).sweep()
    } finally {
      await sql`reset vacuum_freeze_min_age`.execute(db)
      await sql`reset vacuum_freeze_table_age`.execute(db)
    }
    expect(await oldest()).toBeLessThanOrEqual(10)
  })

  it('analyzes the outbox without its payloads, which nothing plans on', async () => {
    if (!test) throw new Error('no database')
    const { db } = test.database
    await sql`
      insert into outbox (sku, type, payload)
      select 'SKU-' || (g % 10), 'Allocated', jsonb_build_object('orderid', 'o-' || g, 'qty', g % 5)
      from generate_series(1, 2000) g`.execute(db)
    await embeddedUpkeep(test.database, quiet).sweep()
    const { rows } = await sql<{ attname: string }>`
      select attname from pg_stats where tablename = 'outbox' order by attname`.execute(db)
    const analyzed = rows.map((r) => r.attname)
    expect(analyzed).toContain('sku')
    expect(analyzed).not.toContain('payload')
  })
})
