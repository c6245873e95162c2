import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgUnitOfWork } from '../../src/adapters/postgres/unit-of-work.ts'
import type { Service } from '../../src/bootstrap.ts'
import { ConcurrencyConflict } from '../../src/service-layer/ports.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe('concurrent writers on the PostgreSQL server', () => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase('postgres', 12)
    if (test) service = serviceOn(test.database)
  })
  afterAll(async () => test?.drop())

  it('allocates exactly the stock to 100 concurrent orders from 10 processes and reports the rest out of stock', async (ctx) => {
    if (!test) return ctx.skip()
    const database = test.database
    const sku = randomSku('hot')
    for (const eta of [null, '2027-01-01', '2027-02-01']) {
      await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 20, eta })
    }
    // Each process has its own bus (its own grouping of allocations); they share only the database.
    const processes = Array.from({ length: 10 }, () => serviceOn(database))
    const connections = new Set<number>()
    let sampling: Promise<unknown> = Promise.resolve()
    const sample = async () => {
      const rows = await sql<{
        pid: number
      }>`select pid from pg_stat_activity where datname = current_database() and state <> 'idle' and pid <> pg_backend_pid()`.execute(
        database.db,
      )
      for (const row of rows.rows) connections.add(row.pid)
    }
    const pids = setInterval(() => {
      sampling = sampling.then(sample)
    }, 2)
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        processes[i % 10]?.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1 }),
      ),
    )
    clearInterval(pids)
    await sampling
    expect(results.filter((r) => r?.batchref !== null)).toHaveLength(60)
    expect(results.filter((r) => r?.batchref === null)).toHaveLength(40)
    // The race was real: several sessions were seen at work (a sampler on a busy machine sees only some of the ten).
    expect(connections.size).toBeGreaterThanOrEqual(4)
    const product = await service.views.product(sku)
    expect(product?.totals).toEqual({ purchased: 60, allocated: 60, available: 0, backordered: 0, held: 0 })
    const rows = await database.db.selectFrom('allocations').select('id').where('sku', '=', sku).execute()
    expect(rows).toHaveLength(60)
  })

  it('lets one of two concurrent transactions on a product win the version and refuses the other', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const start = pgUnitOfWork(test.database)
    const [first, second] = [await start(), await start()]
    const [firstProduct, secondProduct] = [await first.products.get(sku), await second.products.get(sku)]
    firstProduct?.allocate({ orderid: 'first', sku, qty: 6 })
    secondProduct?.allocate({ orderid: 'second', sku, qty: 6 })
    await first.commit()
    await expect(second.commit()).rejects.toThrow(ConcurrencyConflict)
    await Promise.all([first.close(), second.close()])
    expect((await service.views.batch(ref))?.allocated).toBe(6)
  })

  it('retries the loser with the product locked, so it lands after the winner', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const start = pgUnitOfWork(test.database)
    const [first, second] = [await start({ contended: true }), await start({ contended: true })]
    const firstProduct = await first.products.get(sku)
    const secondLoad = second.products.get(sku)
    const raced = await Promise.race([secondLoad.then(() => 'loaded'), sleep(200).then(() => 'waiting')])
    expect(raced).toBe('waiting')

    firstProduct?.allocate({ orderid: 'first', sku, qty: 6 })
    await first.commit()
    await first.close()
    const secondProduct = await secondLoad
    expect(secondProduct?.versionNumber).toBe(2)
    expect(secondProduct?.allocate({ orderid: 'second', sku, qty: 6 }).status).toBe('out_of_stock')
    expect(secondProduct?.allocate({ orderid: 'third', sku, qty: 4 }).batchref).toBe(ref)
    await second.commit()
    await second.close()

    const version = await test.database.db
      .selectFrom('products')
      .select('version_number')
      .where('sku', '=', sku)
      .executeTakeFirst()
    expect(version?.version_number).toBe(3)
    expect((await service.views.batch(ref))?.allocated).toBe(10)
  })

  it('retried, reads several products (a release of expired holds) with all of them locked, so it lands after the winner', async (ctx) => {
    if (!test) return ctx.skip()
    const [lamp, sofa] = [randomSku(), randomSku()]
    const [lampRef, sofaRef] = [randomBatchref(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref: lampRef, sku: lamp, qty: 10, eta: null })
    await service.bus.handle({ type: 'CreateBatch', ref: sofaRef, sku: sofa, qty: 10, eta: null })
    const start = pgUnitOfWork(test.database)
    const [first, second] = [await start({ contended: true }), await start({ contended: true })]
    const both = await first.products.getWithLines(
      new Map([
        [lamp, []],
        [sofa, []],
      ]),
    )
    const secondLoad = second.products.getWithLines(new Map([[sofa, []]]))
    const raced = await Promise.race([secondLoad.then(() => 'loaded'), sleep(200).then(() => 'waiting')])
    expect(raced).toBe('waiting')

    both.get(sofa)?.allocate({ orderid: 'first', sku: sofa, qty: 6 })
    await first.commit()
    await first.close()
    const sofaAfter = (await secondLoad).get(sofa)
    expect(sofaAfter?.versionNumber).toBe(2)
    expect(sofaAfter?.allocate({ orderid: 'second', sku: sofa, qty: 6 }).status).toBe('out_of_stock')
    expect(sofaAfter?.allocate({ orderid: 'third', sku: sofa, qty: 4 }).batchref).toBe(sofaRef)
    await second.commit()
    await second.close()
    expect((await service.views.batch(sofaRef))?.allocated).toBe(10)
    expect((await service.views.batch(lampRef))?.allocated).toBe(0)
  })

  it('lands both of two concurrent allocations on one product through the bus, neither caller seeing the race', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const results = await Promise.all(
      ['a', 'b'].map((orderid) => service.bus.handle({ type: 'Allocate', orderid, sku, qty: 5 })),
    )
    expect(results.map((r) => r.batchref)).toEqual([ref, ref])
    expect((await service.views.batch(ref))?.allocated).toBe(10)
  })
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
