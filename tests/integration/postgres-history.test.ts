import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, type TestDatabase } from './support.ts'

describe.each(modes)('cost of an allocation against history (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) service = bootstrap(loadConfig({ LOG_LEVEL: 'silent' }), { database: test.database })
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
    return sku
  }

  async function statementsOfOneAllocation(sku: string): Promise<string[]> {
    if (!test) throw new Error('no database')
    test.statements.length = 0
    const result = await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1 })
    expect(result.batchref).not.toBeNull()
    // Delivery marks are written a moment later, shared by all the deliveries of that moment.
    return test.statements.filter((s) => !s.startsWith('update "outbox" set "delivered_at"'))
  }

  it('runs the same statements with 0 and with 10,000 past allocations of the sku', async (ctx) => {
    if (!test) return ctx.skip()
    const fresh = await statementsOfOneAllocation(await skuWithHistory(0))
    const old = await statementsOfOneAllocation(await skuWithHistory(10_000))
    expect(old).toEqual(fresh)
    // one read of the product with the line's allocation, one guarded write
    expect(fresh).toHaveLength(2)
  })
})
