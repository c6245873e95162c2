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
    const reads = test.statements.filter((s) => !s.startsWith('delete from "pending_deliveries"'))
    expect(reads).toHaveLength(1)
    expect(reads[0]).toMatch(/from "products" where "sku" = any\(\$1::text\[\]\)$/)
  })

  it('checks the products of concurrent requests together, each against its own version', async (ctx) => {
    if (!test) return ctx.skip()
    const skus = Array.from({ length: 6 }, () => randomSku())
    for (const [i, sku] of skus.entries()) {
      await writer.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10 + i, eta: null })
      await reader.product(sku)
    }
    await writer.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku: skus[2] as string, qty: 4 })
    test.statements.length = 0
    const views = await Promise.all(skus.map((sku) => reader.product(sku)))
    expect(views.map((v) => v?.totals.available)).toEqual([10, 11, 8, 13, 14, 15])
    const checks = test.statements.filter((s) => s.startsWith('select "sku", "version_number"'))
    // The first request's check goes alone; the five that came while it was on its way go together.
    expect(checks).toHaveLength(2)
  })

  it('reads the lines of concurrent order lookups in one statement, each order its own', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    const orderids = Array.from({ length: 5 }, () => randomOrderid())
    await writer.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 100, eta: null })
    for (const [i, orderid] of orderids.entries()) {
      await writer.bus.handle({ type: 'Allocate', orderid, sku, qty: i + 1 })
    }
    test.statements.length = 0
    const orders = await Promise.all([...orderids, randomOrderid()].map((orderid) => reader.order(orderid)))
    expect(orders.map((lines) => lines.map((l) => l.qty))).toEqual([[1], [2], [3], [4], [5], []])
    expect(orders[3]?.[0]).toMatchObject({ orderid: orderids[3], sku, status: 'allocated' })
    expect(test.statements.filter((s) => s.includes('"a"."orderid" = any'))).toHaveLength(2)
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
