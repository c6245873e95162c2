import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Service } from '../../src/bootstrap.ts'
import { LineConflict } from '../../src/domain/errors.ts'
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
})
