import { Agent, request } from 'node:http'
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
    // Clients that keep one connection alive each, sending one line after another until they are refused.
    // A client opens a connection only once the server closed its last one. With fetch's pool, which opens
    // connections whenever its others are busy, one could still wait in the listener's queue as it closed:
    // the kernel resets it (ECONNRESET) though the service never read it.
    const clients = Array.from({ length: 16 }, async (_, i) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      try {
        for (;;) {
          const orderid = randomOrderid(`c${i}`)
          try {
            const body = JSON.stringify({ orderid, sku: skus[i % skus.length], qty: 1 })
            const answer = await post(`${service.url}/allocations`, body, agent)
            outcomes.push({
              orderid,
              status: answer.status,
              code: (JSON.parse(answer.body) as { code?: string }).code ?? null,
            })
          } catch (error) {
            const code = (error as { code?: string }).code ?? String(error)
            // Refused before it was accepted: the process no longer listens. Anything else is a failure.
            if (code !== 'ECONNREFUSED' || !shuttingDown) failures.push(`${orderid}: ${code}`)
            return
          }
        }
      } finally {
        agent.destroy()
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

/** A POST of a JSON body through `agent`, answered with its status and body. */
function post(url: string, body: string, agent: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const sent = request(url, { method: 'POST', agent, headers }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        text += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }))
      response.on('error', reject)
    })
    sent.on('error', reject)
    sent.end(body)
  })
}
