import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { client, pgliteMode, type Storage, startService } from './support.ts'

/**
 * The embedded database commits without waiting for the disk and flushes the commits of a moment
 * together; an allocation is answered only once its flush is done. kill -9 loses PGlite's unflushed log
 * with the process, so any answer given before its flush would show here as a lost allocation.
 */
describe('kill -9 of the embedded service under load', () => {
  let storage: Storage

  beforeAll(async () => {
    storage = await pgliteMode.prepare()
  })
  afterAll(async () => {
    await storage?.drop()
  })

  it('loses no allocation it acknowledged', async () => {
    const sku = randomSku('crash')
    const first = await startService(storage.env)
    const api = client(first.url)
    expect(
      (await api.post('/add_batch', { ref: randomBatchref('crash'), sku, qty: 1_000_000, eta: null })).status,
    ).toBe(201)

    const acknowledged: string[] = []
    let killed = false
    const worker = async () => {
      while (!killed) {
        const orderid = randomOrderid('crash')
        try {
          const answer = await api.post('/allocate', { orderid, sku, qty: 1 })
          if (answer.status === 202) acknowledged.push(orderid)
        } catch {
          // The connection died with the process: not acknowledged.
        }
      }
    }
    const workers = Array.from({ length: 20 }, worker)
    const deadline = Date.now() + 30_000
    while (acknowledged.length < 300 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    killed = true
    await first.kill()
    await Promise.all(workers)
    expect(acknowledged.length).toBeGreaterThanOrEqual(300)

    const second = await startService(storage.env)
    try {
      const again = client(second.url)
      const missing: string[] = []
      for (const orderid of acknowledged) {
        const answer = await again.get(`/allocations/${orderid}`)
        if (answer.status !== 200) missing.push(orderid)
      }
      expect({ acknowledged: acknowledged.length, missing }).toEqual({ acknowledged: acknowledged.length, missing: [] })
    } finally {
      await second.stop()
    }
  })
})
