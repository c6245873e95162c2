import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createLogger } from '../../src/adapters/logger.ts'
import { retention } from '../../src/adapters/postgres/retention.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { readStream } from '../support/event-stream.ts'
import { parseMetrics } from '../support/metrics-text.ts'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

const logger = createLogger('silent')

describe.each(modes)('removing delivered events and handled message ids past their retention (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service
  let app: App

  // Each test starts from an empty outbox: the horizon one test moves is not another's.
  beforeEach(async () => {
    test = await openTestDatabase(mode)
    if (!test) return
    service = serviceOn(test.database)
    app = buildApp(service)
  })
  afterEach(async () => {
    await app?.close()
    await service?.close()
    await test?.drop()
  })

  const db = () => {
    if (!test) throw new Error('no database')
    return test.database.db
  }

  /** Adds `n` batches of a new sku and returns the ids of their `n` events, once all are delivered. */
  async function events(n: number): Promise<number[]> {
    const sku = randomSku()
    for (let i = 0; i < n; i++) {
      await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    }
    await vi.waitFor(async () => {
      const pending = await sql<{ n: number }>`select count(*)::int as n from pending_deliveries`.execute(db())
      expect(pending.rows[0]?.n).toBe(0)
    })
    const rows = await sql<{ id: string }>`select id from outbox where sku = ${sku} order by id`.execute(db())
    const ids = rows.rows.map((r) => Number(r.id))
    expect(ids).toHaveLength(n)
    return ids
  }

  const age = async (ids: number[], days: number) => {
    await sql`update outbox set created_at = now() - make_interval(days => ${days}::int)
              where id = any(${ids}::bigint[])`.execute(db())
  }

  const kept = async () => {
    const rows = await sql<{ id: string }>`select id from outbox order by id`.execute(db())
    return rows.rows.map((r) => Number(r.id))
  }

  it('removes the delivered events older than the retention, page by page, and keeps an undelivered one', async (ctx) => {
    if (!test) return ctx.skip()
    const [a, b, c, d, e] = (await events(5)) as [number, number, number, number, number]
    await age([a, b, c], 31)
    // b was never delivered: it stays, however old.
    await sql`insert into pending_deliveries (id, sku, due_at)
              select id, sku, now() + interval '1 hour' from outbox where id = ${b}`.execute(db())
    const sweeper = retention(test.database, logger, { days: 30, pageSize: 2 })

    expect(await sweeper.sweep()).toBe(2)
    expect(await kept()).toEqual([b, d, e])
    expect(await service.views.prunedThrough()).toBe(c)
    expect(await sweeper.sweep()).toBe(0)
    expect(await service.views.prunedThrough()).toBe(c)
  })

  it('stops at the first event within the retention: older ones behind it wait for it to age', async (ctx) => {
    if (!test) return ctx.skip()
    const [a, b, c] = (await events(3)) as [number, number, number]
    await age([a, c], 31)
    const sweeper = retention(test.database, logger, { days: 30 })

    expect(await sweeper.sweep()).toBe(1)
    expect(await kept()).toEqual([b, c])
    expect(await service.views.prunedThrough()).toBe(a)
    await age([b], 31)
    expect(await sweeper.sweep()).toBe(2)
    expect(await kept()).toEqual([])
    expect(await service.views.prunedThrough()).toBe(c)
  })

  it('answers 410 to a read after an id older than the events kept, and reads the rest as usual', async (ctx) => {
    if (!test) return ctx.skip()
    const [a, b, c] = (await events(3)) as [number, number, number]
    await age([a, b], 31)
    const oldestKeptAge = async () => {
      const metrics = parseMetrics((await app.inject({ method: 'GET', url: '/metrics' })).body)
      return metrics.get('allocation_outbox_oldest_event_seconds') ?? Number.NaN
    }
    expect(await oldestKeptAge()).toBeGreaterThan(31 * 86_400 - 60)
    // The service's own relay removes them: its retention is 30 days unless configured.
    await service.relay.sweep()
    expect(await kept()).toEqual([c])
    expect(await oldestKeptAge()).toBeLessThan(3600)

    const gone = await app.inject({ method: 'GET', url: `/events?after=${a}` })
    expect(gone.statusCode).toBe(410)
    expect(gone.json()).toEqual({
      code: 'events_pruned',
      message: `Events up to id ${b} have been removed for their age, so reading after id ${a} would miss some of them; leave out \`after\` to read from the oldest event kept`,
    })
    expect((await app.inject({ method: 'GET', url: '/events?after=0' })).statusCode).toBe(410)

    const fromHorizon = await app.inject({ method: 'GET', url: `/events?after=${b}` })
    expect(fromHorizon.statusCode).toBe(200)
    expect(fromHorizon.json().events.map((event: { id: number }) => event.id)).toEqual([c])
    const oldestKept = await app.inject({ method: 'GET', url: '/events' })
    expect(oldestKept.json().events.map((event: { id: number }) => event.id)).toEqual([c])

    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    for (const [path, headers] of [
      ['/events/stream', { 'last-event-id': String(a) }],
      [`/events/stream?after=${a}`, {}],
    ] as const) {
      const stream = await readStream(`${url}${path}`, headers)
      expect(stream.status).toBe(410)
      stream.close()
    }
  })

  it('removes the ids of messages handled before the retention period, oldest first', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    const ids = ['m-1', 'm-2', 'm-3', 'm-4', 'm-5'].map((id) => `${id}-${sku}`)
    for (const id of ids) await service.bus.handleOnce(id, { type: 'Allocate', orderid: id, sku, qty: 1 })
    await sql`update handled_messages set handled_at = now() - interval '31 days'
              where id = any(${ids.slice(0, 4)}::text[])`.execute(db())

    expect(await retention(test.database, logger, { days: 30, pageSize: 3 }).sweep()).toBe(4)
    const left = await sql<{ id: string }>`select id from handled_messages order by id`.execute(db())
    expect(left.rows.map((r) => r.id)).toEqual([ids[4]])
  })

  it('keeps every event when the retention is 0 days', async (ctx) => {
    if (!test) return ctx.skip()
    const keepAll = bootstrap(loadConfig({ LOG_LEVEL: 'silent', EVENTS_RETENTION_DAYS: '0' }), {
      database: test.database,
    })
    const ids = await events(2)
    await age(ids, 3650)
    await keepAll.relay.sweep()
    expect(await kept()).toEqual(ids)
    expect(await keepAll.views.prunedThrough()).toBe(0)
  })
})
