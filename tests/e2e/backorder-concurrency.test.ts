import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { postgresAvailable } from '../support/servers.ts'
import { client, postgresMode, type RunningService, type Storage, startService } from './support.ts'

/** Three service processes on one PostgreSQL database, 300 buyers of one sku asking to wait if need be. */
describe('buyers racing for stock with backorders, over three processes', () => {
  let storage: Storage | null = null
  let database: pg.Client
  const services: RunningService[] = []

  beforeAll(async () => {
    if (!(await postgresAvailable())) return
    storage = await postgresMode.prepare()
    database = new pg.Client({ connectionString: storage.env.DATABASE_URL })
    await database.connect()
    for (let i = 0; i < 3; i++) services.push(await startService(storage.env))
  })
  afterAll(async () => {
    for (const service of services) expect(await service.stop(), service.output()).toBe(0)
    await database?.end()
    await storage?.drop()
  })

  it('allocates exactly the stock, keeps every other buyer waiting, then fills them all oldest first', async (ctx) => {
    if (!storage) return ctx.skip()
    const apis = services.map((s) => client(s.url))
    const sku = randomSku('rush')
    const first = randomBatchref('first')
    expect((await apis[0]?.post('/batches', { ref: first, sku, qty: 120, eta: null }))?.status).toBe(201)

    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        apis[i % 3]?.post('/allocations', { orderid: `${sku}-buyer-${i}`, sku, qty: 1, backorder: true }),
      ),
    )
    const statuses = answers.map((a) => a?.status)
    expect(statuses.filter((s) => s === 201)).toHaveLength(120)
    expect(statuses.filter((s) => s === 202)).toHaveLength(180)
    const counts = await database.query<{ status: string; n: number }>(
      'select status, count(*)::int as n from allocations where sku = $1 group by status order by status',
      [sku],
    )
    expect(counts.rows).toEqual([
      { status: 'allocated', n: 120 },
      { status: 'backordered', n: 180 },
    ])
    const queue = await database.query<{ orderid: string }>(
      "select orderid from allocations where sku = $1 and status = 'backordered' order by id",
      [sku],
    )

    const second = randomBatchref('second')
    expect((await apis[2]?.post('/batches', { ref: second, sku, qty: 180, eta: '2027-02-01' }))?.status).toBe(201)
    const filled = await database.query<{ orderid: string }>(
      `select payload->>'orderid' as orderid from outbox
       where sku = $1 and type = 'Allocated' and payload->>'batchref' = $2 order by id`,
      [sku, second],
    )
    // Oldest first: the Allocated events of the fill follow the queue's order of acceptance.
    expect(filled.rows.map((r) => r.orderid)).toEqual(queue.rows.map((r) => r.orderid))
    const batches = await database.query<{ ref: string; purchased: number; allocated: number }>(
      'select ref, purchased, allocated from batches where sku = $1 order by id',
      [sku],
    )
    expect(batches.rows).toEqual([
      { ref: first, purchased: 120, allocated: 120 },
      { ref: second, purchased: 180, allocated: 180 },
    ])
    const left = await database.query(
      "select count(*)::int as n from allocations where sku = $1 and status <> 'allocated'",
      [sku],
    )
    expect(left.rows[0].n).toBe(0)
  })
})
