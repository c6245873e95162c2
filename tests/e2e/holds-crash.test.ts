import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { client, eventsOfSku, type Storage, startService, storageModes } from './support.ts'

/**
 * kill -9 with holds about to expire: they expire while no process runs, and the next start releases
 * each of them once and gives their stock to the waiting line; no line is lost.
 */
describe.each(await storageModes())('holds across a crash on $name', (mode) => {
  let storage: Storage

  beforeAll(async () => {
    storage = await mode.prepare()
  })
  afterAll(async () => storage?.drop())

  it('releases after a restart, once each, the holds that expired while the process was dead', async () => {
    const [sku, ref, waiting] = [randomSku(), randomBatchref(), randomOrderid('waiting')]
    const holds = Array.from({ length: 5 }, () => randomOrderid('hold'))
    const first = await startService(storage.env)
    const api = client(first.url)
    expect((await api.post('/batches', { ref, sku, qty: 10, eta: null })).status).toBe(201)
    for (const orderid of holds) {
      expect((await api.post('/allocations', { orderid, sku, qty: 2, holdSeconds: 3 })).status).toBe(201)
    }
    expect((await api.post('/allocations', { orderid: waiting, sku, qty: 3, backorder: true })).status).toBe(202)
    await first.kill()

    // Long enough for every hold to expire while nothing runs.
    await new Promise((resolve) => setTimeout(resolve, 3500))
    const second = await startService(storage.env)
    try {
      const again = client(second.url)
      await vi.waitFor(
        async () => {
          const order = await again.get(`/orders/${waiting}`)
          expect(order.body.lines?.[0]).toMatchObject({ status: 'allocated', batchref: ref })
        },
        { timeout: 20_000, interval: 200 },
      )
      for (const orderid of holds) expect((await again.get(`/orders/${orderid}`)).status).toBe(404)
      expect((await again.get(`/batches/${ref}`)).body).toMatchObject({ allocated: 3, available: 7 })
      await vi.waitFor(async () => {
        const events = (await eventsOfSku(again, sku)).filter((e) => e.type === 'HoldReleased')
        expect(events.map((e) => e.orderid).sort()).toEqual([...holds].sort())
        expect(events.every((e) => e.reason === 'expired')).toBe(true)
      })
    } finally {
      expect(await second.stop(), second.output()).toBe(0)
    }
  })
})
