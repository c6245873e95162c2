import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Service } from '../../src/bootstrap.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { parseMetrics } from '../support/metrics-text.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

describe.each(modes)('GET /metrics on %s', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service
  let app: App

  beforeAll(async () => {
    test = await openTestDatabase(mode, 4)
    if (!test) return
    service = serviceOn(test.database)
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await test?.drop()
  })

  const scrape = async () => {
    const answer = await app.inject({ method: 'GET', url: '/metrics' })
    expect(answer.statusCode).toBe(200)
    expect(answer.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    return { text: answer.body, series: parseMetrics(answer.body) }
  }

  it('is in the Prometheus text format, with the process defaults', async (ctx) => {
    if (!test) return ctx.skip()
    const { series } = await scrape()
    expect(series.get('process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0)
    expect(series.get('nodejs_heap_size_used_bytes')).toBeGreaterThan(0)
  })

  it('times requests by method, route template and status, never by the URL', async (ctx) => {
    if (!test) return ctx.skip()
    const ref = randomBatchref('secret-looking')
    await app.inject({ method: 'GET', url: `/batches/${ref}` })
    await app.inject({ method: 'GET', url: `/no/such/${ref}` })
    const { text, series } = await scrape()
    expect(
      series.get('http_request_duration_seconds_count{method="GET",route="/batches/:ref",status_code="404"}'),
    ).toBeGreaterThanOrEqual(1)
    expect(
      series.get('http_request_duration_seconds_count{method="GET",route="(unmatched)",status_code="404"}'),
    ).toBeGreaterThanOrEqual(1)
    expect(text).not.toContain(ref)
  })

  it('counts lines by outcome, as the service decided them', async (ctx) => {
    if (!test) return ctx.skip()
    const outcome = (series: Map<string, number>, name: string) =>
      series.get(`allocation_lines_total{outcome="${name}"}`) ?? Number.NaN
    const before = (await scrape()).series
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 3, eta: null })
    const line = (qty: number, extra: object = {}) => ({ orderid: randomOrderid(), sku, qty, ...extra })
    const conflicting = line(1)
    for (const payload of [
      conflicting,
      line(1, { holdSeconds: 60 }),
      line(5),
      line(5, { backorder: true }),
      { ...conflicting, qty: 2 },
    ]) {
      await app.inject({ method: 'POST', url: '/allocations', payload })
    }
    const after = (await scrape()).series
    for (const name of ['allocated', 'held', 'backordered', 'out_of_stock', 'line_conflict']) {
      expect([name, outcome(after, name) - outcome(before, name)]).toEqual([name, 1])
    }
    // Nothing ran concurrently: the same line again (the conflicting qty) lost no race.
    expect(after.get('allocation_write_conflicts_total')).toBe(before.get('allocation_write_conflicts_total'))
    expect(after.get('allocation_dead_letters_total')).toBe(0)
  })

  it('reports the undelivered outbox and the age of its oldest event', async (ctx) => {
    if (!test) return ctx.skip()
    const { db } = test.database
    const [row] = await db
      .insertInto('outbox')
      .values({
        sku: randomSku(),
        type: 'OutOfStock',
        payload: JSON.stringify({ type: 'OutOfStock', orderid: 'o', sku: 's', qty: 1 }),
        created_at: sql<Date>`now() - interval '90 seconds'`,
      })
      .returning(['id', 'sku'])
      .execute()
    await db
      .insertInto('pending_deliveries')
      .values({ id: row?.id ?? 0, sku: row?.sku ?? '', due_at: sql<Date>`now() + interval '1 hour'` })
      .execute()
    try {
      const { series } = await scrape()
      expect(series.get('allocation_outbox_undelivered')).toBeGreaterThanOrEqual(1)
      expect(series.get('allocation_outbox_oldest_undelivered_seconds')).toBeGreaterThanOrEqual(90)
    } finally {
      await db
        .deleteFrom('pending_deliveries')
        .where('id', '=', row?.id ?? 0)
        .execute()
      await db
        .deleteFrom('outbox')
        .where('id', '=', row?.id ?? 0)
        .execute()
    }
  })

  it('shows the database pool', async (ctx) => {
    if (!test) return ctx.skip()
    const { series } = await scrape()
    if (mode === 'pglite') {
      expect(series.has('allocation_db_pool_connections')).toBe(false)
      return
    }
    expect(series.get('allocation_db_pool_max_connections')).toBe(4)
    expect(series.get('allocation_db_pool_connections')).toBeGreaterThanOrEqual(1)
    expect(series.get('allocation_db_pool_idle_connections')).toBeGreaterThanOrEqual(0)
    expect(series.get('allocation_db_pool_waiting_requests')).toBeGreaterThanOrEqual(0)
  })
})
