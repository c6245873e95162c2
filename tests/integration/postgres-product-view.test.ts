import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PgViews } from '../../src/adapters/postgres/views.ts'
import type { Service } from '../../src/bootstrap.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe.each(modes)('the product view read from memory (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  /** Reads, and remembers what it read. */
  let reader: PgViews
  /** Another process's service on the same database: its writes never pass through `reader`. */
  let writer: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (!test) return
    reader = new PgViews(test.database)
    writer = serviceOn(test.database)
  })
  afterAll(async () => test?.drop())

  it('answers an unchanged product with one primary-key read', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    await writer.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    const first = await reader.product(sku)
    test.statements.length = 0
    expect(await reader.product(sku)).toEqual(first)
    // The writer marks its events delivered in the background, meanwhile.
    const reads = test.statements.filter((s) => !s.startsWith('update "outbox"'))
    expect(reads).toHaveLength(1)
    expect(reads[0]).toMatch(/from "products" where "sku" = \$1$/)
  })

  it("shows another process's allocation, new batch and backorder at once", async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, later] = [randomSku(), randomBatchref(), randomBatchref()]
    await writer.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    expect((await reader.product(sku))?.totals.allocated).toBe(0)

    await writer.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 3 })
    expect((await reader.product(sku))?.totals).toMatchObject({ allocated: 3, available: 7 })

    await writer.bus.handle({ type: 'CreateBatch', ref: later, sku, qty: 5, eta: '2027-03-01' })
    expect((await reader.product(sku))?.batches.map((b) => b.ref)).toEqual([ref, later])

    await writer.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 20, backorder: true })
    expect((await reader.product(sku))?.totals).toMatchObject({ purchased: 15, backordered: 20 })
  })

  it('reads afresh a product whose row was updated without a version change', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    await writer.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    expect((await reader.product(sku))?.totals.purchased).toBe(10)
    await sql`with b as (update batches set purchased = 12 where sku = ${sku})
      update products set version_number = version_number where sku = ${sku}`.execute(test.database.db)
    expect((await reader.product(sku))?.totals.purchased).toBe(12)
  })

  it('answers an unknown sku as unknown, also after asking for it before it existed', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    expect(await reader.product(sku)).toBeUndefined()
    await writer.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 2, eta: null })
    expect((await reader.product(sku))?.totals.available).toBe(2)
  })
})
