import { type Compilable, type Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { latestCovering } from '../../src/adapters/postgres/repository.ts'
import type { Schema } from '../../src/adapters/postgres/schema.ts'
import { pgUnitOfWork } from '../../src/adapters/postgres/unit-of-work.ts'
import { linesOfSku } from '../../src/adapters/postgres/views.ts'
import type { Service } from '../../src/bootstrap.ts'
import type { Clock, LineView } from '../../src/service-layer/ports.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

/** Time that the test moves: holds expire when it says so. */
const clock: Clock & { time: number } = {
  time: Date.parse('2026-11-25T10:00:00.000Z'),
  now: () => clock.time,
}

describe.each(modes)('order lines in PostgreSQL (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) service = serviceOn(test.database, { clock })
  })
  afterAll(async () => test?.drop())

  const events = (sku: string, type: string) =>
    test?.database.db
      .selectFrom('outbox')
      .select('payload')
      .where('sku', '=', sku)
      .where('type', '=', type)
      .orderBy('id')
      .execute()
      .then((rows) => rows.map((r) => r.payload as { orderid: string; reason?: string }))

  it('stores each state and loads it back as it was', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    const [allocated, held, waiting] = [randomOrderid('a'), randomOrderid('h'), randomOrderid('w')]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: '2027-01-05' })
    await service.bus.handle({ type: 'Allocate', orderid: allocated, sku, qty: 4 })
    await service.bus.handle({ type: 'Allocate', orderid: held, sku, qty: 5, holdSeconds: 90 })
    await service.bus.handle({ type: 'Allocate', orderid: waiting, sku, qty: 7, backorder: true })

    const uow = await pgUnitOfWork(test.database)()
    const product = await uow.products.get(sku, { orderids: [allocated, held, waiting] })
    await uow.close()
    const expiresAt = clock.time + 90_000
    expect([...(product?.lines.values() ?? [])].map(({ accepted: _, placed: __, ...line }) => line)).toEqual([
      { line: { orderid: allocated, sku, qty: 4 }, status: 'allocated', batchref: ref, expiresAt: null },
      { line: { orderid: held, sku, qty: 5 }, status: 'held', batchref: ref, expiresAt },
      { line: { orderid: waiting, sku, qty: 7 }, status: 'backordered', batchref: null, expiresAt: null },
    ])
    expect(await service.views.order(held)).toEqual([
      {
        orderid: held,
        sku,
        qty: 5,
        status: 'held',
        batchref: ref,
        eta: '2027-01-05',
        expiresAt: new Date(expiresAt).toISOString(),
      },
    ])
    expect(await service.views.order(waiting)).toEqual([
      { orderid: waiting, sku, qty: 7, status: 'backordered', batchref: null, eta: null, expiresAt: null },
    ])
    expect(await service.views.allocations(held)).toEqual([])
    expect((await service.views.product(sku))?.totals).toEqual({
      purchased: 10,
      allocated: 9,
      available: 1,
      backordered: 7,
      held: 5,
    })
  })

  it('refuses in the database a line whose state and batch disagree, and a batch allocated beyond its stock', async (ctx) => {
    if (!test) return ctx.skip()
    const db = test.database.db
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    const batch = await db.selectFrom('batches').select('id').where('ref', '=', ref).executeTakeFirstOrThrow()
    const insert = (status: 'allocated' | 'held' | 'backordered', batchId: number | null, expires: Date | null) =>
      db
        .insertInto('allocations')
        .values({ orderid: randomOrderid(), sku, qty: 1, status, batch_id: batchId, expires_at: expires })
        .execute()
    await expect(insert('backordered', batch.id, null)).rejects.toThrow(/allocations_state_check/)
    await expect(insert('held', batch.id, null)).rejects.toThrow(/allocations_state_check/)
    await expect(insert('allocated', null, null)).rejects.toThrow(/allocations_state_check/)
    await expect(insert('backordered', null, new Date())).rejects.toThrow(/allocations_state_check/)
    await expect(db.updateTable('batches').set({ allocated: 11 }).where('ref', '=', ref).execute()).rejects.toThrow(
      /batches_allocated_within_purchased/,
    )
  })

  it('fills the waiting lines that fit, oldest first, when a batch arrives, passing over one too large', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, first] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref: first, sku, qty: 1, eta: null })
    const orderids = Array.from({ length: 5 }, (_, i) => randomOrderid(`w${i}`))
    const qtys = [3, 9, 3, 3, 2]
    for (const [i, orderid] of orderids.entries()) {
      await service.bus.handle({ type: 'Allocate', orderid, sku, qty: qtys[i] ?? 1, backorder: true })
    }
    test.statements.length = 0
    const second = randomBatchref()
    await service.bus.handle({ type: 'CreateBatch', ref: second, sku, qty: 8, eta: '2027-01-05' })
    const states = await Promise.all(orderids.map(async (o) => (await service.views.order(o))[0]?.status))
    expect(states).toEqual(['allocated', 'backordered', 'allocated', 'backordered', 'allocated'])
    expect((await events(sku, 'Allocated'))?.map((e) => e.orderid)).toEqual([orderids[0], orderids[2], orderids[4]])
    // The queue is read by qty: only lines that can fit, never the whole queue or the sku's history.
    expect(test.statements.some((s) => s.includes(`"status" = 'backordered' and "qty" <= $`))).toBe(true)
  })

  it('reads no queue when stock comes back to a sku on which no line waits', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 5, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2 })
    test.statements.length = 0
    await service.bus.handle({ type: 'Deallocate', orderid, sku })
    expect((await service.views.batch(ref))?.allocated).toBe(0)
    expect(test.statements.some((s) => s.includes(`"status" = 'backordered' and "qty" <= $`))).toBe(false)

    // Once a line waits, the same change reads the queue and fills it.
    const waiting = randomOrderid('w')
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 5 })
    await service.bus.handle({ type: 'Allocate', orderid: waiting, sku, qty: 3, backorder: true })
    test.statements.length = 0
    await service.bus.handle({ type: 'Deallocate', orderid, sku })
    expect(test.statements.some((s) => s.includes(`"status" = 'backordered' and "qty" <= $`))).toBe(true)
    expect((await service.views.order(waiting))[0]).toMatchObject({ status: 'allocated', batchref: ref })
  })

  it('releases each expired hold once when two relays sweep at the same moment, and fills a waiting line', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 20, eta: null })
    const holds = Array.from({ length: 10 }, () => randomOrderid('hold'))
    for (const orderid of holds) {
      await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2, holdSeconds: 30 })
    }
    const waiting = randomOrderid('waiting')
    await service.bus.handle({ type: 'Allocate', orderid: waiting, sku, qty: 5, backorder: true })
    const other = serviceOn(test.database, { clock })

    await Promise.all([service.relay.sweep(), other.relay.sweep()])
    expect((await service.views.order(waiting))[0]?.status).toBe('backordered')
    clock.time += 30_000
    await Promise.all([service.relay.sweep(), other.relay.sweep(), service.relay.sweep(), other.relay.sweep()])

    const released = (await events(sku, 'HoldReleased')) ?? []
    expect(released.map((e) => e.orderid).sort()).toEqual([...holds].sort())
    expect(released.every((e) => e.reason === 'expired')).toBe(true)
    expect((await service.views.order(waiting))[0]?.status).toBe('allocated')
    expect((await service.views.batch(ref))?.allocated).toBe(5)
    for (const orderid of holds) expect(await service.views.order(orderid)).toEqual([])
  })

  it('stores an expired hold sent again with another qty as the new line, in the same row', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 6, holdSeconds: 5 })
    clock.time += 5000
    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 4 })
    expect(await service.views.order(orderid)).toEqual([
      { orderid, sku, qty: 4, status: 'allocated', batchref: ref, eta: null, expiresAt: null },
    ])
    expect((await service.views.batch(ref))?.allocated).toBe(4)
  })

  it('keeps the row of a line moved off a shrunk batch, so it keeps its place in the queue', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    const [moved, later] = [randomOrderid('moved'), randomOrderid('later')]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 4, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid: moved, sku, qty: 4 })
    await service.bus.handle({ type: 'Allocate', orderid: later, sku, qty: 4, backorder: true })
    await service.bus.handle({ type: 'ChangeBatchQuantity', ref, qty: 2 })
    expect((await service.views.order(moved))[0]?.status).toBe('backordered')
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 4, eta: null })
    expect((await service.views.order(moved))[0]?.status).toBe('allocated')
    expect((await service.views.order(later))[0]?.status).toBe('backordered')
  })

  it('takes off a shrunk batch the lines most recently allocated to it: a backorder filled late, a line moved in', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref, other, third] = [randomSku(), randomBatchref(), randomBatchref(), randomBatchref()]
    const [first, filled, direct, early] = [
      randomOrderid('first'),
      randomOrderid('filled'),
      randomOrderid('direct'),
      randomOrderid('early'),
    ]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 6, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid: first, sku, qty: 4 })
    // `filled` is accepted before `direct` but allocated after it, once `first` is cancelled.
    await service.bus.handle({ type: 'Allocate', orderid: filled, sku, qty: 3, backorder: true })
    await service.bus.handle({ type: 'Allocate', orderid: direct, sku, qty: 2 })
    await service.bus.handle({ type: 'Deallocate', orderid: first, sku })
    expect((await service.views.order(filled))[0]).toMatchObject({ status: 'allocated', batchref: ref })
    // `early` goes to `other` directly, `ref` having 1 left.
    await service.bus.handle({ type: 'CreateBatch', ref: other, sku, qty: 5, eta: '2027-03-01' })
    await service.bus.handle({ type: 'Allocate', orderid: early, sku, qty: 2 })
    expect((await service.views.order(early))[0]).toMatchObject({ batchref: other })

    // 5 on a batch of 3: the latest allocated (`filled`, 3) leaves, not the latest accepted (`direct`, 2).
    await service.bus.handle({ type: 'ChangeBatchQuantity', ref, qty: 3 })
    expect((await service.views.order(filled))[0]).toMatchObject({ status: 'allocated', batchref: other })
    expect((await service.views.order(direct))[0]).toMatchObject({ status: 'allocated', batchref: ref })
    // On `other`, `filled` moved in after `early` was allocated there (though accepted before it): it leaves.
    await service.bus.handle({ type: 'CreateBatch', ref: third, sku, qty: 3, eta: '2027-09-01' })
    await service.bus.handle({ type: 'ChangeBatchQuantity', ref: other, qty: 3 })
    expect((await service.views.order(filled))[0]).toMatchObject({ status: 'allocated', batchref: third })
    expect((await service.views.order(early))[0]).toMatchObject({ status: 'allocated', batchref: other })
  })

  it('reads the backorder queue and the expired holds through their partial indexes, even as prepared statements', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, ref] = [randomSku(), randomBatchref()]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 1, eta: null })
    await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 5, backorder: true })
    await service.bus.handle({ type: 'Allocate', orderid: randomOrderid(), sku, qty: 1, holdSeconds: 1 })
    test.statements.length = 0
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 2, eta: null })
    clock.time += 1000
    await service.relay.sweep()
    const queue = test.statements.find((s) => s.includes(`"status" = 'backordered' and "qty" <= $`))
    const holds = test.statements.find((s) => s.includes(`"status" = 'held' and "expires_at" <= `))
    expect(queue && holds).toBeTruthy()
    // A generic plan (what a prepared statement ends up with) with scans made as costly as they can be:
    // the plan names the index only if the statement can use it whatever its parameters.
    const plans = await test.database.db.connection().execute(async (connection) => {
      await sql`set enable_seqscan = off`.execute(connection)
      await sql`set plan_cache_mode = force_generic_plan`.execute(connection)
      await sql.raw(`prepare waiting_page as ${queue}`).execute(connection)
      await sql.raw(`prepare due_holds as ${holds}`).execute(connection)
      const explain = async (statement: string) =>
        JSON.stringify((await sql.raw(`explain (format json) ${statement}`).execute(connection)).rows)
      const found = [
        await explain(`execute waiting_page('${sku}', 5, 0, 500)`),
        await explain(`execute due_holds(${clock.time / 1000}, 100)`),
      ]
      // Only these two: the service's own prepared statements on this connection must stay.
      await sql`deallocate waiting_page`.execute(connection)
      await sql`deallocate due_holds`.execute(connection)
      await sql`reset all`.execute(connection)
      return found
    })
    expect(plans[0]).toContain('allocations_queue_idx')
    expect(plans[1]).toContain('allocations_held_expiry_idx')
  })

  it("lists a sku's lines across its batches and its queue, reading only about as many rows as it lists", async (ctx) => {
    if (!test) return ctx.skip()
    const db = test.database.db
    const [sku, near, far] = [randomSku(), randomBatchref('near'), randomBatchref('far')]
    await service.bus.handle({ type: 'CreateBatch', ref: near, sku, qty: 4, eta: null })
    await service.bus.handle({ type: 'CreateBatch', ref: far, sku, qty: 10, eta: '2027-02-01' })
    const orderids = Array.from({ length: 6 }, (_, i) => randomOrderid(`l${i}`))
    const asks = [
      { qty: 3 },
      { qty: 3 },
      { qty: 20, backorder: true },
      { qty: 1, holdSeconds: 600 },
      { qty: 2 },
      { qty: 30, backorder: true },
    ]
    for (const [i, orderid] of orderids.entries()) {
      await service.bus.handle({ type: 'Allocate', orderid, sku, ...(asks[i] ?? { qty: 1 }) })
    }
    // Another sku's history, written after these lines: a read by id that filters on sku walks all of it.
    const other = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku: other, qty: 1_000_000, eta: null })
    await sql`
      insert into allocations (orderid, sku, qty, batch_id)
      select 'past-' || n, ${other}, 1, b.id from generate_series(1, 5000) as n, batches b where b.sku = ${other}`.execute(
      db,
    )
    await sql`analyze allocations`.execute(db)

    const expected = (
      await db.selectFrom('allocations').select(['orderid', 'status']).where('sku', '=', sku).orderBy('id').execute()
    ).map((r) => [r.orderid, r.status])
    const listed = async (status: 'allocated' | null, limit: number) =>
      ((await service.views.lines(sku, { status, limit, after: 0 }))?.lines ?? []).map((l) => [l.orderid, l.status])
    // Page by page, each page starting at the last one's `next`, until `next` is null: no page is empty
    // but the first (a state without lines), so a full last page says that no line follows.
    const paged = async (status: LineView['status'] | null, limit: number) => {
      const all: string[][] = []
      for (let after: number | null = 0; after !== null; ) {
        const page = await service.views.lines(sku, { status, limit, after })
        if (!page) throw new Error(`${sku} unknown`)
        if (after > 0) expect(page.lines.length, `a page after ${after}`).toBeGreaterThan(0)
        all.push(...page.lines.map((l) => [l.orderid, l.status]))
        after = page.next
      }
      return all
    }
    expect(expected.map(([, status]) => status)).toEqual([
      'allocated',
      'allocated',
      'backordered',
      'held',
      'allocated',
      'backordered',
    ])
    expect(await listed(null, 100)).toEqual(expected)
    expect(await listed(null, 3)).toEqual(expected.slice(0, 3))
    const nextOf = async (limit: number) => (await service.views.lines(sku, { status: null, limit, after: 0 }))?.next
    expect(await nextOf(expected.length), 'a page holding every line').toBeNull()
    expect(await nextOf(expected.length - 1), 'a page holding all lines but one').not.toBeNull()
    expect(await listed('allocated', 100)).toEqual(expected.filter(([, status]) => status === 'allocated'))
    for (const limit of [1, 2, 4]) {
      expect(await paged(null, limit), `pages of ${limit}`).toEqual(expected)
      for (const status of ['allocated', 'held', 'backordered'] as const) {
        expect(await paged(status, limit), `${status}, pages of ${limit}`).toEqual(
          expected.filter(([, s]) => s === status),
        )
      }
    }
    expect((await service.views.lines(sku, { status: null, limit: 100, after: 0 }))?.lines[1]).toMatchObject({
      batchref: far,
      eta: '2027-02-01',
    })

    // The plan a prepared statement keeps (generic), run: the rows it reads are this sku's, not the table's.
    // From the middle too: a page reads from its cursor on, not from the sku's first line.
    const middle = (await service.views.lines(sku, { status: null, limit: 3, after: 0 }))?.next ?? 0
    for (const status of [null, 'allocated'] as const) {
      for (const after of [0, middle]) {
        const read = await rowsReadByGenericPlan(db, linesOfSku(db, sku, status, 100, after))
        expect(read, `status ${status} after ${after}`).toBeLessThan(100)
      }
    }
  })

  it("moves a shrunk batch's newest lines, reading only those, however many lines the batch has carried", async (ctx) => {
    if (!test) return ctx.skip()
    const db = test.database.db
    const [sku, ref, spare] = [randomSku(), randomBatchref('big'), randomBatchref('spare')]
    await service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10_000, eta: null })
    await sql`
      insert into allocations (orderid, sku, qty, batch_id)
      select 'past-' || n, ${sku}, 1, b.id from generate_series(1, 5000) as n, batches b where b.ref = ${ref}`.execute(
      db,
    )
    await sql`update batches set allocated = 5000 where ref = ${ref}`.execute(db)
    await sql`update products set version_number = version_number + 1 where sku = ${sku}`.execute(db)
    const newest = [randomOrderid('n1'), randomOrderid('n2')]
    for (const orderid of newest) await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2 })
    await service.bus.handle({ type: 'CreateBatch', ref: spare, sku, qty: 10, eta: '2027-03-01' })
    await sql`analyze allocations`.execute(db)

    // 5,004 allocated; down to 5,001: the newest line (2) is not enough, the one before it (2) covers it.
    const { deallocated } = await service.bus.handle({ type: 'ChangeBatch', ref, qty: 5001, eta: null })
    expect(deallocated.map((l) => l.orderid).sort()).toEqual([...newest].sort())
    for (const orderid of newest) expect((await service.views.order(orderid))[0]?.batchref).toBe(spare)
    expect((await service.views.batch(ref))?.allocated).toBe(5000)

    const batch = await db
      .selectFrom('batches')
      .select(['id', 'ref', 'eta', 'purchased', 'allocated'])
      .where('ref', '=', ref)
      .executeTakeFirstOrThrow()
    const read = await rowsReadByGenericPlan(db, latestCovering(db, sku, batch, 3))
    expect(read).toBeLessThan(50)
  })
})

/**
 * Runs `query` as a prepared statement on its generic plan (the plan the service's statements keep) and
 * returns the rows that plan read.
 */
async function rowsReadByGenericPlan(db: Kysely<Schema>, query: Compilable): Promise<number> {
  const { sql: text, parameters } = query.compile()
  const values = parameters.map((p) => (typeof p === 'number' ? String(p) : `'${String(p)}'`)).join(', ')
  return db.connection().execute(async (connection) => {
    await sql`set plan_cache_mode = force_generic_plan`.execute(connection)
    await sql.raw(`prepare measured as ${text}`).execute(connection)
    const explained = await sql.raw(`explain (analyze, format json) execute measured(${values})`).execute(connection)
    // Only this one: the service's own prepared statements on this connection must stay.
    await sql`deallocate measured`.execute(connection)
    await sql`reset all`.execute(connection)
    return rowsRead(explained.rows)
  })
}

/** Rows the plan's nodes produced or filtered out, over all their loops: what running it read. */
function rowsRead(explained: unknown[]): number {
  type PlanNode = {
    'Actual Rows'?: number
    'Actual Loops'?: number
    'Rows Removed by Filter'?: number
    Plans?: PlanNode[]
  }
  const visit = (node: PlanNode): number =>
    ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * (node['Actual Loops'] ?? 1) +
    (node.Plans ?? []).reduce((sum, child) => sum + visit(child), 0)
  const [row] = explained as Array<Record<string, unknown>>
  const plan = (Object.values(row ?? {})[0] as Array<{ Plan: PlanNode }>)[0]?.Plan
  if (!plan) throw new Error(`no plan in ${JSON.stringify(explained)}`)
  return visit(plan)
}
