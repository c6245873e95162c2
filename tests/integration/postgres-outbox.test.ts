import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { PgOutbox } from '../../src/adapters/postgres/outbox.ts'
import { pgUnitOfWork } from '../../src/adapters/postgres/unit-of-work.ts'
import type { Service } from '../../src/bootstrap.ts'
import { HoldWithBackorder, LineConflict } from '../../src/domain/errors.ts'
import { createOutboxRelay } from '../../src/service-layer/outbox-relay.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe.each(modes)('PostgreSQL outbox (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) service = serviceOn(test.database)
  })
  afterAll(async () => test?.drop())

  /** Time passes: every undelivered event becomes due. */
  async function makeAllDue(): Promise<void> {
    await sql`update pending_deliveries set due_at = now()`.execute(test?.database.db ?? fail())
  }

  it('loses no line when a crash follows the commit of a shrink, and delivers its events after a restart', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, early, late, orderid] = [randomSku(), randomBatchref(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref: early, sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'CreateBatch', ref: late, sku, qty: 10, eta: '2027-01-01' })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 8 })
    // What a process that died right after committing the shrink leaves behind: no delivery at all.
    const uow = await pgUnitOfWork(test.database)()
    const product = await uow.products.get(sku, { excessOf: { ref: early, qty: 5 } })
    product?.changeBatchQuantity(early, 5)
    await uow.commit()
    await uow.close()
    // The line moved in the shrink's own transaction.
    expect(await service.views.allocations(orderid)).toEqual([{ sku, batchref: late, qty: 8 }])

    const restarted = serviceOn(test.database)
    const relay = createOutboxRelay({
      bus: restarted.bus,
      outbox: new PgOutbox(test.database),
      logger: restarted.logger,
    })
    await makeAllDue()
    expect(await relay.sweep()).toBeGreaterThanOrEqual(2)
    await makeAllDue()
    await relay.sweep()
    expect(await service.views.allocations(orderid)).toEqual([{ sku, batchref: late, qty: 8 }])
    const allocated = await test.database.db
      .selectFrom('outbox')
      .select('payload')
      .where('sku', '=', sku)
      .where('type', '=', 'Allocated')
      .execute()
    expect(allocated.map((r) => (r.payload as { batchref: string }).batchref)).toEqual([early, late])
    const undelivered = await test.database.db
      .selectFrom('pending_deliveries')
      .select('id')
      .where('sku', '=', sku)
      .execute()
    expect(undelivered).toEqual([])
  })

  it('leases a claimed event to one sweeper and backs off its next attempt', async (ctx) => {
    if (!test) return ctx.skip()
    const outbox = new PgOutbox(test.database)
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 1, eta: null })
    // The in-line delivery marks its event a moment after answering; wait for it, then undo every mark.
    await vi.waitFor(async () => {
      const pending = await test?.database.db
        .selectFrom('pending_deliveries')
        .select('id')
        .where('sku', '=', sku)
        .execute()
      expect(pending).toEqual([])
    })
    await sql`insert into pending_deliveries (id, sku) select id, sku from outbox on conflict do nothing`.execute(
      test.database.db,
    )
    await makeAllDue()
    const first = await outbox.claimDue(1000)
    const ours = first.find((stored) => stored.event.sku === sku)
    expect(ours).toBeDefined()
    expect(await outbox.claimDue(1000)).toEqual([])
    const row = await test.database.db
      .selectFrom('pending_deliveries')
      .select([sql<boolean>`due_at > now() + interval '4 seconds'`.as('backed_off'), 'attempts'])
      .where('id', '=', ours?.id ?? 0)
      .executeTakeFirst()
    expect(row).toEqual({ backed_off: true, attempts: 1 })
    for (const stored of first) await outbox.markDelivered(stored.id)
  })

  it('makes the deliveries waiting out a backoff due now, keeping their attempts, but not one just claimed', async (ctx) => {
    if (!test) return ctx.skip()
    const db = test.database.db
    const outbox = new PgOutbox(test.database)
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    for (const orderid of [randomOrderid(), randomOrderid()]) {
      await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 1 })
    }
    const ids = (await db.selectFrom('outbox').select('id').where('sku', '=', sku).orderBy('id').execute()).map((row) =>
      Number(row.id),
    )
    expect(ids).toHaveLength(3)
    const [longAgo, justNow, fresh] = ids as [number, number, number]
    await vi.waitFor(async () => {
      expect(await db.selectFrom('pending_deliveries').select('id').where('sku', '=', sku).execute()).toEqual([])
    })
    // Claimed a minute ago with the longest backoff; claimed 2 s ago with a 20 s one, perhaps in a sweep's
    // hands still; committed just now and not yet claimed, its delivery in line under way.
    await sql`
      insert into pending_deliveries (id, sku, attempts, due_at) values
        (${longAgo}, ${sku}, 8, now() + interval '9 minutes'),
        (${justNow}, ${sku}, 3, now() + interval '18 seconds'),
        (${fresh}, ${sku}, 0, now() + interval '5 seconds')`.execute(db)

    await outbox.retryNow()

    const rows = await db
      .selectFrom('pending_deliveries')
      .select(['id', 'attempts', sql<number>`extract(epoch from due_at - now())::float8`.as('dueIn')])
      .where('sku', '=', sku)
      .orderBy('id')
      .execute()
    expect(rows.map((row) => [Number(row.id), row.attempts])).toEqual([
      [longAgo, 8],
      [justNow, 3],
      [fresh, 0],
    ])
    const [longAgoDueIn, justNowDueIn, freshDueIn] = rows.map((row) => row.dueIn)
    expect(longAgoDueIn).toBeLessThanOrEqual(0)
    // Its lease (the shortest backoff, 5 s from the claim) ends in 3 s.
    expect(justNowDueIn).toBeGreaterThan(2)
    expect(justNowDueIn).toBeLessThanOrEqual(3)
    expect(freshDueIn).toBeGreaterThan(4)
    const claimed = await outbox.claimDue(1000)
    expect(claimed.filter((stored) => stored.event.sku === sku).map((stored) => stored.id)).toEqual([longAgo])
    for (const stored of claimed) await outbox.markDelivered(stored.id)
    await db.deleteFrom('pending_deliveries').where('sku', '=', sku).execute()
  })

  it('handles a redelivered outside message once', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const deallocate = { type: 'Deallocate', orderid, sku } as const
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2 })
    expect(await service.bus.handleOnce(`m-${orderid}`, deallocate)).toMatchObject({ batchref: ref })
    expect(await service.bus.handleOnce(`m-${orderid}`, deallocate)).toBeNull()
  })

  it('records no outside message it refused: the refusal is its answer, however often it comes', async (ctx) => {
    if (!test) return ctx.skip()
    const db = test.database.db
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2 })
    const version = async () =>
      (await db.selectFrom('products').select('version_number').where('sku', '=', sku).executeTakeFirstOrThrow())
        .version_number
    const before = await version()
    const conflicting = { type: 'Allocate', orderid, sku, qty: 3 } as const
    // Refused (and dead-lettered by the consumer); sent again, it is refused again, not taken as handled.
    await expect(service.bus.handleOnce(`m-${orderid}`, conflicting)).rejects.toThrow(LineConflict)
    await expect(service.bus.handleOnce(`m-${orderid}`, conflicting)).rejects.toThrow(LineConflict)
    const held = { type: 'Allocate', orderid: randomOrderid(), sku, qty: 1, backorder: true, holdSeconds: 60 } as const
    await expect(service.bus.handleOnce(`m-${held.orderid}`, held)).rejects.toThrow(HoldWithBackorder)
    const handled = await db
      .selectFrom('handled_messages')
      .select('id')
      .where('id', 'in', [`m-${orderid}`, `m-${held.orderid}`])
      .execute()
    expect(handled).toEqual([])
    expect(await version()).toBe(before)
  })

  it('pages through committed events in order', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1 })
    // Events show once every transaction older than theirs has ended, anywhere on the server.
    const all = await vi.waitFor(async () => {
      const events = await service.views.events(0, 10_000)
      expect(events.filter((e) => e.event.sku === sku).map((e) => e.event.type)).toEqual(['BatchCreated', 'Allocated'])
      return events
    })
    const ids = all.map((e) => e.id)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    const after = all.at(-3)?.id ?? 0
    expect((await service.views.events(after, 1)).map((e) => e.id)).toEqual([all.at(-2)?.id])
  })
})

describe('PostgreSQL outbox readers and open transactions', () => {
  let test: TestDatabase | null
  beforeAll(async () => {
    test = await openTestDatabase('postgres')
  })
  afterAll(async () => test?.drop())

  it('hides an event while an older transaction that may still add one below it is open', async (ctx) => {
    if (!test) return ctx.skip()
    const service = serviceOn(test.database)
    const [slowSku, fastSku] = [randomSku('slow'), randomSku('fast')]
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku: slowSku, qty: 10, eta: null })
    const before = await vi.waitFor(async () => {
      const events = await service.views.events(0, 10_000)
      expect(events.at(-1)?.event.sku).toBe(slowSku)
      return events.at(-1)?.id ?? 0
    })
    const slow = await test.database.db.startTransaction().execute()
    await sql`insert into outbox (sku, type, payload) values (${slowSku}, 'Test', ${JSON.stringify({ sku: slowSku })})`.execute(
      slow,
    )
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku: fastSku, qty: 10, eta: null })
    expect(await service.views.events(before, 100)).toEqual([])
    await slow.commit().execute()
    await vi.waitFor(async () =>
      expect((await service.views.events(before, 100)).map((e) => e.event.sku)).toEqual([slowSku, fastSku]),
    )
  })
})

function fail(): never {
  throw new Error('no database')
}
