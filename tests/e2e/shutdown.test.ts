import { afterAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { postgresAvailable } from '../support/servers.ts'
import { client, pgliteMode, postgresMode, type Storage, type StorageMode, startService } from './support.ts'

type Outcome = Readonly<{ orderid: string; status: number; code: string | null }>

const modes: StorageMode[] = [pgliteMode, ...((await postgresAvailable()) ? [postgresMode] : [])]

describe.each(modes)('shutting down under load ($name)', (mode) => {
  const storages: Storage[] = []
  afterAll(async () => {
    for (const storage of storages) await storage.drop()
  })

  it('answers every request it accepted, exits 0, and keeps every line it answered 201', async () => {
    const storage = await mode.prepare()
    storages.push(storage)
    const service = await startService(storage.env)
    const api = client(service.url)
    const skus = Array.from({ length: 4 }, () => randomSku())
    for (const sku of skus) {
      expect((await api.post('/batches', { ref: randomBatchref(), sku, qty: 100_000, eta: null })).status).toBe(201)
    }

    const outcomes: Outcome[] = []
    const failures: string[] = []
    let shuttingDown = false
    // Clients that keep their connections alive, sending one line after another until they are refused.
    const clients = Array.from({ length: 16 }, async (_, i) => {
      for (;;) {
        const orderid = randomOrderid(`c${i}`)
        try {
          const answer = await fetch(`${service.url}/allocations`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ orderid, sku: skus[i % skus.length], qty: 1 }),
          })
          const body = (await answer.json()) as { code?: string }
          outcomes.push({ orderid, status: answer.status, code: body.code ?? null })
        } catch (error) {
          const code = (error as { cause?: { code?: string } }).cause?.code ?? String(error)
          // Refused before it was accepted: the process no longer listens. Anything else is a failure.
          if (code !== 'ECONNREFUSED' || !shuttingDown) failures.push(`${orderid}: ${code}`)
          return
        }
      }
    })

    while (outcomes.length < 200) await new Promise((resolve) => setTimeout(resolve, 20))
    shuttingDown = true
    const exitCode = await service.stop()
    await Promise.all(clients)

    expect(exitCode).toBe(0)
    expect(failures).toEqual([])
    expect(outcomes.filter(({ status }) => status !== 201 && status !== 503)).toEqual([])
    expect(outcomes.filter(({ status, code }) => status === 503 && code !== 'unavailable')).toEqual([])
    expect(service.output()).not.toMatch(/"level":(50|60)/)

    // After a restart every line answered 201 is there, and none answered 503 was written.
    const again = await startService(storage.env)
    try {
      const reader = client(again.url)
      for (const { orderid, status } of outcomes) {
        const order = await reader.get(`/orders/${encodeURIComponent(orderid)}`)
        expect([orderid, order.status]).toEqual([orderid, status === 201 ? 200 : 404])
      }
    } finally {
      expect(await again.stop()).toBe(0)
    }
  })
})
