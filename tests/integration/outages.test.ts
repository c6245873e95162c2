import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase } from '../../src/adapters/postgres/database.ts'
import { migrateToLatest } from '../../src/adapters/postgres/migrator.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { redisAvailable, redisUrl } from '../support/redis.ts'
import { createDatabase, postgresAvailable } from '../support/servers.ts'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts'

/** Retries `check` until it passes (the service recovers in the background), for at most `ms`. */
async function eventually(check: () => Promise<void>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

const allocation = (sku: string) => ({ orderid: randomOrderid(), sku, qty: 1 })

describe('PostgreSQL refusing, dropping and not answering', () => {
  let available = false
  let place: { url: string; drop: () => Promise<void> }
  let proxy: TcpProxy
  let database: Database
  let service: Service
  let app: App
  const broken: Error[] = []

  beforeAll(async () => {
    available = await postgresAvailable()
    if (!available) return
    place = await createDatabase()
    const direct = openDatabase({ databaseUrl: place.url, dataDir: '', poolSize: 2 })
    await migrateToLatest(direct.db)
    await direct.close()
    const target = new URL(place.url)
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432))
    const proxied = new URL(place.url)
    proxied.host = `127.0.0.1:${proxy.port}`
    database = openDatabase({
      databaseUrl: proxied.toString(),
      dataDir: '',
      poolSize: 10,
      // Longer than /ready's own 1 s bound, so a hung server is reported by that bound and not by a
      // connect timeout that would race it.
      connectTimeoutMs: 2000,
      statementTimeoutMs: 1000,
      onConnectionError: (error) => broken.push(error),
    })
    service = bootstrap(loadConfig({ LOG_LEVEL: 'silent' }), { database })
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await proxy?.close()
    await place?.drop()
  })

  const post = (payload: object) => app.inject({ method: 'POST', url: '/allocations', payload })

  it('answers 503 unavailable with Retry-After, never 500 and never dying, when connections in use are cut', async (ctx) => {
    if (!available) return ctx.skip()
    const skus = Array.from({ length: 20 }, () => randomSku())
    for (const sku of skus)
      await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 1000, eta: null })

    const lines = Array.from({ length: 200 }, (_, i) => allocation(skus[i % skus.length] as string))
    const answers = lines.map((line) => post(line))
    // Cut while the requests are in flight, on connections checked out of the pool.
    await new Promise((resolve) => setTimeout(resolve, 15))
    proxy.setMode('refuse')
    proxy.cut()
    const settled = await Promise.all(answers)

    const statuses = settled.map((a) => a.statusCode)
    expect(statuses.every((s) => s === 201 || s === 503)).toBe(true)
    expect(statuses).toContain(503)
    for (const answer of settled.filter((a) => a.statusCode === 503)) {
      expect(answer.json()).toEqual({ message: expect.stringContaining('database'), code: 'unavailable' })
      expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0)
    }
    // While it is refused, a new request gets the same answer, a read too, and the readiness probe says why.
    expect((await post(allocation(skus[0] as string))).statusCode).toBe(503)
    for (const url of [`/products/${skus[0]}`, `/orders/${(lines[0] as { orderid: string }).orderid}`]) {
      const read = await app.inject({ method: 'GET', url })
      expect(read.statusCode, url).toBe(503)
      expect(read.json().code).toBe('unavailable')
    }
    const ready = await app.inject({ method: 'GET', url: '/ready' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json()).toMatchObject({
      status: 'unready',
      checks: { database: expect.stringMatching(/not answering|did not answer/), redis: 'off' },
    })

    // Back without a restart; every line answered 201 was kept.
    proxy.setMode('forward')
    await eventually(async () => expect((await app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200))
    expect((await post(allocation(skus[0] as string))).statusCode).toBe(201)
    for (const [i, answer] of settled.entries()) {
      if (answer.statusCode !== 201) continue
      const line = lines[i] as { orderid: string; sku: string }
      expect(await service.views.order(line.orderid)).toEqual([
        expect.objectContaining({ sku: line.sku, status: 'allocated' }),
      ])
    }
  })

  it('answers 503 unavailable when the server stops answering, and recovers', async (ctx) => {
    if (!available) return ctx.skip()
    const sku = randomSku()
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 10, eta: null })
    proxy.setMode('hang')
    const stuck = await post(allocation(sku))
    expect(stuck.statusCode).toBe(503)
    expect(stuck.json().code).toBe('unavailable')
    const read = await app.inject({ method: 'GET', url: `/products/${sku}` })
    expect(read.statusCode).toBe(503)
    const ready = await app.inject({ method: 'GET', url: '/ready' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json().checks.database).toBe('did not answer within 1000 ms')

    proxy.setMode('forward')
    proxy.cut()
    await eventually(async () => expect((await post(allocation(sku))).statusCode).toBe(201))
    expect((await app.inject({ method: 'GET', url: '/ready' })).json()).toEqual({
      status: 'ready',
      checks: { database: 'ok', redis: 'off' },
    })
  })
})

describe('Redis refusing and not answering', () => {
  let available = false
  let place: { url: string; drop: () => Promise<void> }
  let proxy: TcpProxy
  let service: Service
  let app: App

  beforeAll(async () => {
    available = (await postgresAvailable()) && (await redisAvailable())
    if (!available) return
    place = await createDatabase()
    const target = new URL(redisUrl)
    proxy = await startTcpProxy(target.hostname, Number(target.port || 6379))
    const proxied = new URL(redisUrl)
    proxied.host = `127.0.0.1:${proxy.port}`
    service = bootstrap(loadConfig({ LOG_LEVEL: 'silent', DATABASE_URL: place.url, REDIS_URL: proxied.toString() }))
    await service.migrate()
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await proxy?.close()
    await place?.drop()
  })

  it('keeps taking writes, reports Redis in /ready, and recovers by itself', async (ctx) => {
    if (!available) return ctx.skip()
    const sku = randomSku()
    expect((await app.inject({ method: 'GET', url: '/ready' })).json()).toEqual({
      status: 'ready',
      checks: { database: 'ok', redis: 'ok' },
    })
    for (const mode of ['refuse', 'hang'] as const) {
      proxy.setMode(mode)
      proxy.cut()
      const created = await app.inject({
        method: 'POST',
        url: '/batches',
        payload: { ref: randomBatchref(), sku, qty: 5, eta: null },
      })
      // Publishing fails and is retried from the outbox later; the write itself does not need Redis.
      expect(created.statusCode).toBe(201)
      const ready = await app.inject({ method: 'GET', url: '/ready' })
      expect(ready.statusCode).toBe(503)
      expect(ready.json()).toMatchObject({ status: 'unready', checks: { database: 'ok' } })
      expect(ready.json().checks.redis).not.toBe('ok')
    }
    proxy.setMode('forward')
    proxy.cut()
    await eventually(async () => expect((await app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200))
  })

  it('delivers what waits out a long backoff at the next sweep once publishing to Redis works again', async (ctx) => {
    if (!available) return ctx.skip()
    const db = service.database?.db
    if (!db) throw new Error('the service has no database')
    const pending = (sku: string) => db.selectFrom('pending_deliveries').select('id').where('sku', '=', sku).execute()
    const addBatch = (sku: string) =>
      app.inject({ method: 'POST', url: '/batches', payload: { ref: randomBatchref(), sku, qty: 5, eta: null } })
    service.relay.start()
    proxy.setMode('refuse')
    proxy.cut()
    const waiting = randomSku()
    expect((await addBatch(waiting)).statusCode).toBe(201)
    // As after a long outage: its last attempt failed a minute ago and the next is 9 minutes away.
    await sql`update pending_deliveries set attempts = 8, due_at = now() + interval '9 minutes' where sku = ${waiting}`.execute(
      db,
    )
    expect(await pending(waiting)).toHaveLength(1)

    proxy.setMode('forward')
    // Past the 5 s in which publishing is refused at once, the next write publishes again.
    await new Promise((resolve) => setTimeout(resolve, 5500))
    const next = randomSku()
    expect((await addBatch(next)).statusCode).toBe(201)
    await eventually(async () => expect(await pending(next)).toEqual([]), 1000)
    await eventually(async () => expect(await pending(waiting)).toEqual([]), 3000)
  })
})
