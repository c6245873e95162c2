import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Service } from '../../src/bootstrap.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe.each(modes)('POST /batches/bulk (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service
  let app: App

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (!test) return
    service = serviceOn(test.database)
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await test?.drop()
  })

  const bulk = (batches: unknown[]) => app.inject({ method: 'POST', url: '/batches/bulk', payload: { batches } })
  const stored = async (refs: string[]) =>
    (
      (await test?.database.db
        .selectFrom('batches')
        .select(['ref', 'sku', 'purchased', 'eta'])
        .where('ref', 'in', refs)
        .orderBy('id')
        .execute()) ?? []
    ).map((b) => [b.ref, b.sku, b.purchased, b.eta])
  const eventCount = async (skus: string[]) =>
    Number(
      (
        await test?.database.db
          .selectFrom('outbox')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('sku', 'in', skus)
          .executeTakeFirst()
      )?.n,
    )

  it('adds batches of new and existing skus in one go, each with its event', async (ctx) => {
    if (!test) return ctx.skip()
    const [lamp, desk] = [randomSku('lamp'), randomSku('desk')]
    const refs = [randomBatchref('a'), randomBatchref('b'), randomBatchref('c'), randomBatchref('d')]
    await service.bus.handle({ type: 'CreateBatch', ref: refs[0] as string, sku: lamp, qty: 5, eta: null })
    const answer = await bulk([
      { ref: refs[1], sku: lamp, qty: 10, eta: '2027-01-31' },
      { ref: refs[2], sku: desk, qty: 20, eta: null },
      { ref: refs[3], sku: lamp, qty: 30, eta: null },
    ])
    expect(answer.statusCode).toBe(200)
    expect(answer.json()).toEqual({ added: 3, present: 0 })
    // In creation order within each sku.
    expect((await stored(refs)).sort((a, b) => String(a[1]).localeCompare(String(b[1])))).toEqual([
      [refs[2], desk, 20, null],
      [refs[0], lamp, 5, null],
      [refs[1], lamp, 10, '2027-01-31'],
      [refs[3], lamp, 30, null],
    ])
    expect(await eventCount([lamp, desk])).toBe(4)
    // The product's version moved on: an allocation sees the new batches, warehouse stock first.
    const allocated = await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku: lamp, qty: 25 })
    expect(allocated.batchref).toBe(refs[3])
  })

  it('changes nothing when the same batches are sent again', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    const batches = [1, 2, 3].map((qty) => ({ ref: randomBatchref(), sku, qty, eta: null }))
    expect((await bulk(batches)).json()).toEqual({ added: 3, present: 0 })
    const events = await eventCount([sku])
    const again = await bulk(batches)
    expect(again.statusCode).toBe(200)
    expect(again.json()).toEqual({ added: 0, present: 3 })
    expect(await eventCount([sku])).toBe(events)
  })

  it('writes nothing of a request whose batch conflicts with a stored one, naming its place', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, taken, fresh] = [randomSku(), randomBatchref('taken'), randomBatchref('fresh')]
    await service.bus.handle({ type: 'CreateBatch', ref: taken, sku, qty: 5, eta: null })
    const answer = await bulk([
      { ref: fresh, sku, qty: 1, eta: null },
      { ref: taken, sku, qty: 6, eta: null },
    ])
    expect(answer.statusCode).toBe(409)
    expect(answer.json()).toMatchObject({
      code: 'batch_conflict',
      message: expect.stringContaining(taken),
      details: [{ location: 'body', field: 'batches.1.ref', rule: 'conflict' }],
    })
    expect(await stored([taken, fresh])).toEqual([[taken, sku, 5, null]])
  })

  it('refuses an id with a control character, naming the field', async (ctx) => {
    if (!test) return ctx.skip()
    const ref = randomBatchref()
    const answer = await bulk([
      { ref, sku: randomSku(), qty: 1, eta: null },
      { ref: randomBatchref(), sku: 'bad\u0007sku', qty: 1, eta: null },
    ])
    expect(answer.statusCode).toBe(400)
    expect(answer.json()).toMatchObject({
      code: 'validation_failed',
      message: 'The field "batches.1.sku" must not contain control characters or unpaired surrogates',
    })
    expect(await stored([ref])).toEqual([])
  })

  it('refuses an empty list, and more than 5,000 batches', async (ctx) => {
    if (!test) return ctx.skip()
    expect((await bulk([])).statusCode).toBe(400)
    const many = Array.from({ length: 5001 }, (_, i) => ({ ref: `r${i}`, sku: 's', qty: 1, eta: null }))
    expect((await bulk(many)).json()).toMatchObject({ message: 'The field "batches" must have at most 5000 items' })
  })

  it('fills the lines waiting on a sku, oldest first, with the stock it brings', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 1, eta: null })
    const waiting = [randomOrderid('1'), randomOrderid('2'), randomOrderid('3')]
    for (const orderid of waiting) await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2, backorder: true })
    const arriving = randomBatchref('arriving')
    const answer = await bulk([
      { ref: arriving, sku, qty: 4, eta: '2027-02-01' },
      { ref: randomBatchref(), sku: randomSku(), qty: 9, eta: null },
    ])
    expect(answer.json()).toEqual({ added: 2, present: 0 })
    const lines = await Promise.all(waiting.map(async (orderid) => (await service.views.order(orderid))[0]))
    expect(lines.map((l) => [l?.status, l?.batchref])).toEqual([
      ['allocated', arriving],
      ['allocated', arriving],
      ['backordered', null],
    ])
  })

  it('is in the OpenAPI document', async (ctx) => {
    if (!test) return ctx.skip()
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
    expect(Object.keys(document.paths['/batches/bulk'])).toEqual(['post'])
    expect(document.paths['/batches/bulk'].post.responses['409']).toBeDefined()
  })
})
