import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Service } from '../../src/bootstrap.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe.each(modes)('cost of an allocation against history (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) service = serviceOn(test.database)
  })
  afterAll(async () => test?.drop())

  /** A sku whose warehouse batch already carries `past` allocations of one unit each. */
  async function skuWithHistory(past: number): Promise<string> {
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 1_000_000, eta: null })
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 1_000_000, eta: '2027-01-01' })
    if (!test) throw new Error('no database')
    await sql`
      insert into allocations (orderid, sku, qty, batch_id)
      select 'past-' || n, ${sku}, 1, b.id from generate_series(1, ${past}::int) as n, batches b where b.ref = ${ref}`.execute(
      test.database.db,
    )
    await sql`update batches set allocated = ${past}::int where ref = ${ref}`.execute(test.database.db)
    // As the allocations would have: every change of a product moves its version.
    await sql`update products set version_number = version_number + ${past}::int + 1 where sku = ${sku}`.execute(
      test.database.db,
    )
    return sku
  }

  /** Seeded behind the service's back, the product is not what the service last wrote: a cold start. */
  async function coldAndWarm(sku: string): Promise<[string[], string[]]> {
    return [await statementsOfOneAllocation(sku), await statementsOfOneAllocation(sku)]
  }

  async function statementsOfOneAllocation(sku: string): Promise<string[]> {
    if (!test) throw new Error('no database')
    test.statements.length = 0
    const result = await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1 })
    expect(result.batchref).not.toBeNull()
    // Delivery marks are written a moment later, shared by all the deliveries of that moment.
    return test.statements.filter((s) => !s.startsWith('delete from "pending_deliveries"'))
  }

  it('runs the same statements with 0 and with 10,000 past allocations of the sku', async (ctx) => {
    if (!test) return ctx.skip()
    const [freshCold, freshWarm] = await coldAndWarm(await skuWithHistory(0))
    const [oldCold, oldWarm] = await coldAndWarm(await skuWithHistory(10_000))
    expect(oldCold).toEqual(freshCold)
    expect(oldWarm).toEqual(freshWarm)
    // Cold: the write from the remembered product fails its version guard and brings the product back as
    // it found it; a second guarded write, from that, allocates. No lock, no transaction.
    expect(freshCold).toHaveLength(2)
    expect(freshCold.every((s) => /^\s*with version as/.test(s))).toBe(true)
    // Warm: the product this process wrote last needs no read; one guarded write allocates.
    expect(freshWarm).toHaveLength(1)
    expect(freshWarm[0]).toMatch(/^\s*with version as/)
  })

  it('plans each prepared statement once on every connection, whatever the statistics of history', async (ctx) => {
    if (!test) return ctx.skip()
    const { db } = test.database
    const modes = await Promise.all(
      Array.from({ length: 4 }, () => sql<{ plan_cache_mode: string }>`show plan_cache_mode`.execute(db)),
    )
    expect(modes.map((r) => r.rows[0]?.plan_cache_mode)).toEqual(Array(4).fill('force_generic_plan'))
  })
})
