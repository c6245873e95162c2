import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgUnitOfWork } from '../../src/adapters/postgres/unit-of-work.ts'
import { Product } from '../../src/domain/model.ts'
import type { StartUnitOfWork } from '../../src/service-layer/ports.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, type TestDatabase } from './support.ts'

describe.each(modes)('PostgreSQL repository and unit of work (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let startUnitOfWork: StartUnitOfWork

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) startUnitOfWork = pgUnitOfWork(test.database)
  })
  afterAll(async () => test?.drop())

  async function insertProduct(sku: string, batches: Array<[string, number, string | null]>): Promise<void> {
    const uow = await startUnitOfWork()
    try {
      const product = new Product({ sku })
      for (const [ref, qty, eta] of batches) product.addBatch(ref, qty, eta)
      uow.products.add(product)
      await uow.commit()
    } finally {
      await uow.close()
    }
  }

  async function batchRow(ref: string) {
    return test?.database.db.selectFrom('batches').selectAll().where('ref', '=', ref).executeTakeFirst()
  }

  it('saves a product and loads it back with its batches, version and the asked-for allocations', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, b1, b2, o1, o2] = [randomSku(), randomBatchref(), randomBatchref(), randomOrderid(), randomOrderid()]
    await insertProduct(sku, [
      [b1, 100, null],
      [b2, 150, '2027-01-31'],
    ])
    const uow = await startUnitOfWork()
    const product = await uow.products.get(sku)
    product?.allocate({ orderid: o1, sku, qty: 10 })
    product?.allocate({ orderid: o2, sku, qty: 95 })
    await uow.commit()
    await uow.close()

    const reader = await startUnitOfWork()
    const loaded = await reader.products.get(sku, { orderids: [o2] })
    await reader.close()
    expect(loaded?.versionNumber).toBe(4)
    expect(loaded?.batches.map((b) => [b.ref, b.eta, b.purchasedQuantity, b.allocatedQuantity])).toEqual([
      [b1, null, 100, 10],
      [b2, '2027-01-31', 150, 95],
    ])
    expect([...(loaded?.lines.values() ?? [])]).toEqual([
      {
        line: { orderid: o2, sku, qty: 95 },
        status: 'allocated',
        batchref: b2,
        expiresAt: null,
        accepted: expect.any(Number),
        placed: expect.any(Number),
      },
    ])
  })

  it('rolls back on error', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await insertProduct(sku, [[ref, 10, null]])
    const uow = await startUnitOfWork()
    await expect(
      (async () => {
        const product = await uow.products.get(sku)
        product?.allocate({ orderid: randomOrderid(), sku, qty: 3 })
        throw new Error('handler failed before committing')
      })(),
    ).rejects.toThrow('handler failed')
    await uow.close()
    expect((await batchRow(ref))?.allocated).toBe(0)
  })

  it('rolls back uncommitted work', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await insertProduct(sku, [[ref, 10, null]])
    const uow = await startUnitOfWork()
    const product = await uow.products.get(sku)
    product?.allocate({ orderid: randomOrderid(), sku, qty: 3 })
    await uow.close()
    expect((await batchRow(ref))?.allocated).toBe(0)
    expect(await test.database.db.selectFrom('allocations').select('id').where('sku', '=', sku).execute()).toEqual([])
  })

  it('writes the events to the outbox in the same transaction as the change', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await insertProduct(sku, [[ref, 10, null]])
    const uow = await startUnitOfWork()
    const product = await uow.products.get(sku)
    product?.allocate({ orderid, sku, qty: 3 })
    await uow.commit()
    const [stored] = uow.collectNewEvents()
    await uow.close()
    expect(stored?.event).toEqual({ type: 'Allocated', orderid, sku, qty: 3, batchref: ref })
    const row = await test.database.db
      .selectFrom('outbox')
      .innerJoin('pending_deliveries as p', 'p.id', 'outbox.id')
      .select(['type', 'payload', 'p.sku'])
      .where('outbox.id', '=', stored?.id ?? 0)
      .executeTakeFirst()
    // Written with its pending delivery, which the in-line delivery deletes once done.
    expect(row).toEqual({ type: 'Allocated', payload: stored?.event, sku })
  })

  it('refuses an oversell written by raw SQL', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await insertProduct(sku, [[ref, 10, null]])
    const db = test.database.db
    await expect(sql`update batches set allocated = 11 where ref = ${ref}`.execute(db)).rejects.toThrow(
      /batches_allocated_within_purchased/,
    )
    await expect(sql`update batches set allocated = -1 where ref = ${ref}`.execute(db)).rejects.toThrow(
      /batches_allocated_within_purchased/,
    )
  })

  it('refuses a second allocation row for the same order line by raw SQL', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await insertProduct(sku, [[ref, 10, null]])
    const db = test.database.db
    const insert = () =>
      sql`insert into allocations (orderid, sku, qty, batch_id) select ${orderid}, ${sku}, 1, id from batches where ref = ${ref}`.execute(
        db,
      )
    await insert()
    await expect(insert()).rejects.toThrow(/allocations_orderid_sku_key/)
  })

  it('loads only the newest allocations that cover a shrinking batch', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await insertProduct(sku, [[ref, 100, null]])
    const orderids = Array.from({ length: 6 }, () => randomOrderid())
    const uow = await startUnitOfWork()
    const product = await uow.products.get(sku)
    for (const orderid of orderids) product?.allocate({ orderid, sku, qty: 10 })
    await uow.commit()
    await uow.close()

    const reader = await startUnitOfWork()
    const loaded = await reader.products.get(sku, { excessOf: { ref, qty: 35 } })
    await reader.close()
    expect([...(loaded?.lines.keys() ?? [])]).toEqual(orderids.slice(3))
  })
})
