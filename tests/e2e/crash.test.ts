import type { Redis } from 'ioredis'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { redisAvailable, redisUrl, testClient } from '../support/redis.ts'
import { type Client, client, postgresMode, type Storage, startService } from './support.ts'

type StreamEntry = [id: string, fields: string[]]

/**
 * kill -9 while batches shrink under load: whatever had committed when the process died is delivered
 * after the restart (each reallocation exactly once), and nothing committed is lost.
 */
describe('a crash between commit and delivery', () => {
  let storage: Storage | null = null
  let database: pg.Client
  let redis: Redis

  beforeAll(async () => {
    if (!(await redisAvailable())) return
    storage = await postgresMode.prepare()
    database = new pg.Client({ connectionString: storage.env.DATABASE_URL })
    await database.connect()
    redis = testClient()
  })
  afterAll(async () => {
    redis?.disconnect()
    await database?.end()
    await storage?.drop()
  })

  it('delivers after the restart what the dead process committed, each reallocation once', async (ctx) => {
    if (!storage) return ctx.skip()
    const env = { ...storage.env, REDIS_URL: redisUrl }
    const skus: string[] = []
    // Whether the kill lands between a commit and its delivery is up to timing: try until one does.
    let unfinished = 0
    for (let attempt = 1; attempt <= 5 && unfinished === 0; attempt++) {
      skus.push(...(await shrinkAndKill(env)))
      const { rows } = await database.query('select count(*)::int as n from pending_deliveries')
      unfinished = rows[0].n
    }
    // The crash left deliveries unfinished (or unrecorded, which is the same to the outbox).
    expect(unfinished).toBeGreaterThan(0)
    const second = await startService(env)
    try {
      await everythingDelivered(skus)
    } finally {
      await second.stop()
    }
  })

  it('three processes on one database: when one is killed, the other two deliver what it committed', async (ctx) => {
    if (!storage) return ctx.skip()
    const env = { ...storage.env, REDIS_URL: redisUrl }
    const survivors = [await startService(env), await startService(env)]
    try {
      const skus: string[] = []
      let unfinished = 0
      for (let attempt = 1; attempt <= 5 && unfinished === 0; attempt++) {
        const killed = await shrinkAndKill(
          env,
          survivors.map((s) => client(s.url)),
        )
        skus.push(...killed)
        const { rows } = await database.query('select count(*)::int as n from pending_deliveries where sku = any($1)', [
          killed,
        ])
        unfinished = rows[0].n
      }
      expect(unfinished).toBeGreaterThan(0)
      await everythingDelivered(skus)
    } finally {
      for (const survivor of survivors) expect(await survivor.stop(), survivor.output()).toBe(0)
    }
  })

  /** Every event is delivered and published once its process is gone, and every line is still there. */
  async function everythingDelivered(skus: string[]): Promise<void> {
    await vi.waitFor(
      async () => {
        const { rows } = await database.query('select count(*)::int as n from pending_deliveries')
        expect(rows[0].n).toBe(0)
      },
      { timeout: 30_000, interval: 250 },
    )

    // No line lost: every line is allocated, and no batch holds more than it has.
    const lines = await database.query('select orderid from allocations where sku = any($1)', [skus])
    expect(lines.rowCount).toBe(skus.length * 5)
    const over = await database.query('select ref from batches where allocated > purchased or allocated < 0')
    expect(over.rows).toEqual([])

    // Each line taken off a shrunk batch was allocated again exactly once.
    const events = await database.query<{ id: string; type: string; orderid: string | null; reason: string | null }>(
      `select id::text, type, payload->>'orderid' as orderid, payload->>'reason' as reason
       from outbox where sku = any($1) order by id`,
      [skus],
    )
    const moved = events.rows.filter((e) => e.type === 'Deallocated' && e.reason === 'batch-shrunk')
    expect(moved.length).toBeGreaterThan(0)
    for (const { orderid } of moved) {
      expect(events.rows.filter((e) => e.type === 'Allocated' && e.orderid === orderid)).toHaveLength(2)
    }

    // Every event reached allocation:events, under its outbox id (a repeat carries the same id).
    const published = new Set<string>()
    const entries = (await redis.xrevrange('allocation:events', '+', '-', 'COUNT', 20_000)) as StreamEntry[]
    for (const [, fields] of entries) published.add(fields[fields.indexOf('id') + 1] as string)
    for (const event of events.rows) expect(published.has(event.id)).toBe(true)
  }
})

/**
 * Allocates 5 lines on each of 20 skus (through this process and the `others`, in turn), shrinks every
 * early batch at once through this process and kills it as soon as the first shrink has answered.
 * Returns the skus.
 */
async function shrinkAndKill(env: Record<string, string>, others: Client[] = []): Promise<string[]> {
  const first = await startService(env)
  const api = client(first.url)
  const apis = [api, ...others]
  const skus = Array.from({ length: 20 }, () => randomSku('crash'))
  const early = new Map(skus.map((sku) => [sku, randomBatchref('early')]))
  for (const [i, sku] of skus.entries()) {
    await api.post('/batches', { ref: early.get(sku), sku, qty: 10, eta: null })
    await api.post('/batches', { ref: randomBatchref('late'), sku, qty: 100, eta: '2027-03-01' })
    for (let line = 0; line < 5; line++) {
      await apis[(i + line) % apis.length]?.post('/allocations', { orderid: `${sku}-o${line}`, sku, qty: 2 })
    }
  }
  const shrinks = skus.map((sku) => api.request('PATCH', `/batches/${early.get(sku)}`, { qty: 4 }).catch(() => null))
  await Promise.race(shrinks)
  await first.kill()
  await Promise.allSettled(shrinks)
  return skus
}
