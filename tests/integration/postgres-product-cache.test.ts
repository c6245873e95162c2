import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgUnitOfWork } from '../../src/adapters/postgres/unit-of-work.ts'
import type { Service } from '../../src/bootstrap.ts'
import { LineConflict } from '../../src/domain/errors.ts'
import { Product } from '../../src/domain/model.ts'
import { ConcurrencyConflict, type StartUnitOfWork, type UnitOfWork } from '../../src/service-layer/ports.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

/** The product a process wrote last is reused for new lines; these are the cases where it must not be. */
describe.each(modes)('allocating from the product this process wrote last (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) service = serviceOn(test.database)
  })
  afterAll(async () => test?.drop())

  it('answers a re-sent line with its batch and changes nothing', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 3 })
    expect(await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 3 })).toMatchObject({ batchref: ref })
    expect((await service.views.batch(ref))?.allocated).toBe(3)
    await expect(service.bus.handle({ type: 'Allocate', orderid, sku, qty: 4 })).rejects.toThrow(LineConflict)
    expect((await service.views.batch(ref))?.allocated).toBe(3)
  })

  it('notices what another process wrote in between, and never oversells', async (ctx) => {
    if (!test) return ctx.skip()
    const other = serviceOn(test.database)
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 5, eta: null })
    const results = []
    for (let i = 0; i < 8; i++) {
      const bus = (i % 2 === 0 ? service : other).bus
      results.push(await bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1 }))
    }
    expect(results.map((r) => r.batchref)).toEqual([ref, ref, ref, ref, ref, null, null, null])
    expect((await service.views.batch(ref))?.allocated).toBe(5)
    // A batch added by the other process is seen by the next allocation here.
    const [another] = [randomBatchref()]
    await other.bus.handle({ type: 'CreateBatch', ref: another, sku, qty: 5, eta: '2027-01-01' })
    expect(await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 2 })).toMatchObject({
      batchref: another,
    })
  })

  it('retries at once, without locking, from the product as another process left it', async (ctx) => {
    if (!test) return ctx.skip()
    const other = serviceOn(test.database)
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1 })
    await other.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 2 })
    const from = test.statements.length
    expect(await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 3 })).toMatchObject({
      batchref: ref,
    })
    const sent = test.statements.slice(from)
    // The save from the stale entry fails its guard and brings the product back; the second save succeeds.
    expect(sent.filter((statement) => statement.includes('update products set version_number'))).toHaveLength(2)
    expect(sent.filter((statement) => /for update|^begin/i.test(statement))).toEqual([])
    expect((await service.views.batch(ref))?.allocated).toBe(6)
  })

  // Two processes, each with its own cache, are two unit-of-work factories on the database.
  async function inUnitOfWork<R>(start: StartUnitOfWork, work: (uow: UnitOfWork) => Promise<R>): Promise<R> {
    const uow = await start()
    try {
      return await work(uow)
    } finally {
      await uow.close()
    }
  }
  const allocate = (start: StartUnitOfWork, sku: string, orderid: string, qty: number, holdSeconds?: number) =>
    inUnitOfWork(start, async (uow) => {
      const product = await uow.products.get(sku, { newLines: [orderid] })
      const outcome = product?.allocate({ orderid, sku, qty }, { holdSeconds: holdSeconds ?? null, now: Date.now() })
      await uow.commit()
      return outcome
    })
  const addBatch = (start: StartUnitOfWork, sku: string, ref: string, qty: number) =>
    inUnitOfWork(start, async (uow) => {
      const product = (await uow.products.get(sku)) ?? new Product({ sku })
      if (product.batches.length === 0) uow.products.add(product)
      product.addBatch(ref, qty, null)
      await uow.commit()
    })
  /** Each batch of `sku`: its counts, and the qty its lines hold. */
  const onBatches = async (sku: string) => {
    const { rows } = await sql<{ ref: string; purchased: number; allocated: number; lines: number }>`
      select b.ref, b.purchased, b.allocated,
        (select coalesce(sum(a.qty), 0)::int from allocations a where a.batch_id = b.id) as lines
      from batches b where b.sku = ${sku} order by b.id`.execute((test as TestDatabase).database.db)
    return rows
  }

  it('trusts nothing a rolled-back transaction saved: another process may reach the same version with other lines', async (ctx) => {
    if (!test) return ctx.skip()
    const [here, there] = [pgUnitOfWork(test.database), pgUnitOfWork(test.database)]
    const [a, b, ref] = [randomSku(), randomSku(), randomBatchref()]
    await addBatch(there, a, ref, 10)
    await addBatch(there, b, randomBatchref(), 10)
    await allocate(there, a, 'hold', 2, 1)
    await allocate(there, b, 'hold', 2, 1)
    // This process releases both holds in one transaction; B's save loses its race, so A's is rolled back.
    const release = await here()
    try {
      const products = await release.products.getWithLines(new Map([a, b].map((sku) => [sku, ['hold']])))
      for (const product of products.values()) product.releaseExpiredHold('hold', Date.now() + 5000)
      await allocate(there, b, randomOrderid(), 1)
      await expect(release.commit()).rejects.toThrow(ConcurrencyConflict)
    } finally {
      await release.close()
    }
    // The other process writes A once: the version this process's rolled-back save had given it.
    await allocate(there, a, randomOrderid(), 1)
    await allocate(here, a, randomOrderid(), 1)
    // The hold (2) and the two lines: the batch's count is its lines', not what the rolled-back save left.
    expect(await onBatches(a)).toEqual([{ ref, purchased: 10, allocated: 4, lines: 4 }])
  })

  it('never places a line on a batch whose creation was rolled back', async (ctx) => {
    if (!test) return ctx.skip()
    const [here, there] = [pgUnitOfWork(test.database), pgUnitOfWork(test.database)]
    const [sku, full, added] = [randomSku(), randomBatchref(), randomBatchref()]
    await addBatch(here, sku, full, 5)
    // The new batch's save fails its guard (the other process wrote in between) and reads the product as
    // it found it, within the transaction that inserted the batch: that transaction is rolled back.
    const adding = await here()
    try {
      const product = await adding.products.get(sku)
      await allocate(there, sku, randomOrderid(), 5)
      product?.addBatch(added, 10, null)
      await expect(adding.commit()).rejects.toThrow(ConcurrencyConflict)
    } finally {
      await adding.close()
    }
    expect(await allocate(here, sku, randomOrderid(), 3)).toMatchObject({ status: 'out_of_stock' })
    expect(await onBatches(sku)).toEqual([{ ref: full, purchased: 5, allocated: 5, lines: 5 }])
  })

  it('shrinks a batch whose lines are being cancelled meanwhile, in every round', async (ctx) => {
    if (!test) return ctx.skip()
    // The shrink reads the product, then the lines that cover the excess, by two statements: lines
    // cancelled in between leave the second short of the first, which is read again, locked.
    const other = serviceOn(test.database)
    const failures: unknown[] = []
    for (let round = 0; round < 20; round++) {
      const [sku, ref] = [randomSku(), randomBatchref()]
      await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 30, eta: null })
      await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 5, eta: '2027-01-01' })
      const orderids = Array.from({ length: 30 }, () => randomOrderid())
      for (const orderid of orderids) await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 1 })
      const settled = await Promise.allSettled([
        service.bus.handle({ type: 'ChangeBatchQuantity', ref, qty: 2 }),
        ...orderids.slice(2).map((orderid) => other.bus.handle({ type: 'Deallocate', orderid, sku })),
      ])
      failures.push(...settled.flatMap((s) => (s.status === 'rejected' ? [s.reason] : [])))
      const [batch] = (await onBatches(sku)) ?? []
      expect(batch).toMatchObject({ purchased: 2 })
      expect(batch?.allocated).toBe(batch?.lines)
    }
    expect(failures).toEqual([])
  })
})
