import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { PgExpiredHolds } from '../../src/adapters/postgres/expired-holds.ts'
import type { Service } from '../../src/bootstrap.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe.each(modes)('the holds due (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeEach(async () => {
    test = await openTestDatabase(mode)
    if (test) service = serviceOn(test.database)
  })
  afterEach(async () => {
    await service?.close()
    await test?.drop()
  })

  it('lists the holds past their expiry, the earliest first, up to the limit, and no other line', async () => {
    if (!test) throw new Error('no database')
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    const [later, earlier, kept] = [randomOrderid(), randomOrderid(), randomOrderid()]
    await service.bus.handle({ type: 'Allocate', orderid: later, sku, qty: 1, holdSeconds: 120 })
    await service.bus.handle({ type: 'Allocate', orderid: earlier, sku, qty: 1, holdSeconds: 60 })
    await service.bus.handle({ type: 'Allocate', orderid: kept, sku, qty: 1 })
    const after = Date.now()
    const holds = new PgExpiredHolds(test.database)

    expect(await holds.due(after, 10)).toEqual([])
    expect(await holds.due(after + 60_000, 10)).toEqual([{ orderid: earlier, sku }])
    expect(await holds.due(after + 120_000, 10)).toEqual([
      { orderid: earlier, sku },
      { orderid: later, sku },
    ])
    expect(await holds.due(after + 120_000, 1)).toEqual([{ orderid: earlier, sku }])
  })
})
