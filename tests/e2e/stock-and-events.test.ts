import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { readStream } from '../support/event-stream.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Client, client, type RunningService, type Storage, startService, storageModes } from './support.ts'

describe.each(await storageModes())('stock and live events on $name', (mode) => {
  let storage: Storage
  let service: RunningService
  let api: Client

  beforeAll(async () => {
    storage = await mode.prepare()
    service = await startService({ ...storage.env, EVENTS_POLL_MS: '50' })
    api = client(service.url)
  })

  afterAll(async () => {
    const code = await service?.stop()
    await storage?.drop()
    expect(code, service?.output()).toBe(0)
  })

  it('lists every sku with its totals, the least available stock first', async () => {
    const [plenty, short, waiting] = [randomSku('plenty'), randomSku('short'), randomSku('waiting')]
    await api.post('/batches', { ref: randomBatchref(), sku: plenty, qty: 900, eta: null })
    await api.post('/batches', { ref: randomBatchref(), sku: short, qty: 5, eta: null })
    await api.post('/batches', { ref: randomBatchref(), sku: short, qty: 4, eta: '2031-01-01' })
    await api.post('/batches', { ref: randomBatchref(), sku: waiting, qty: 2, eta: null })
    const held = await api.post('/allocations', { orderid: randomOrderid(), sku: short, qty: 3, holdSeconds: 600 })
    expect(held.status).toBe(201)
    await api.post('/allocations', { orderid: randomOrderid(), sku: waiting, qty: 2 })
    const backordered = await api.post('/allocations', {
      orderid: randomOrderid(),
      sku: waiting,
      qty: 7,
      backorder: true,
    })
    expect(backordered.status).toBe(202)

    const answer = await api.get('/products')
    expect(answer.status).toBe(200)
    const ours = (answer.body as Array<{ sku: string }>).filter((p) => [plenty, short, waiting].includes(p.sku))
    expect(ours).toEqual([
      { sku: waiting, totals: { purchased: 2, allocated: 2, available: 0, backordered: 7, held: 0 } },
      { sku: short, totals: { purchased: 9, allocated: 3, available: 6, backordered: 0, held: 3 } },
      { sku: plenty, totals: { purchased: 900, allocated: 0, available: 900, backordered: 0, held: 0 } },
    ])
    const available = (answer.body as Array<{ totals: { available: number } }>).map((p) => p.totals.available)
    expect(available).toEqual([...available].sort((a, b) => a - b))
  })

  it('streams what the API commits to a reader, and a reader that reconnects misses nothing', async () => {
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    const stream = await readStream(`${service.url}/events/stream`)
    await api.post('/batches', { ref, sku, qty: 10, eta: null })
    await vi.waitFor(() => expect(stream.events.map((e) => e.type)).toEqual(['BatchCreated']), { timeout: 20_000 })
    stream.close()
    const last = stream.events.at(-1)?.id

    await api.post('/allocations', { orderid, sku, qty: 4 })
    await api.patch(`/batches/${ref}`, { eta: '2030-06-01' })
    const resumed = await readStream(`${service.url}/events/stream`, { 'last-event-id': String(last) })
    await vi.waitFor(() => expect(resumed.events.map((e) => e.type)).toEqual(['Allocated', 'BatchEtaChanged']), {
      timeout: 20_000,
    })
    expect(resumed.events[1]?.data).toEqual({ type: 'BatchEtaChanged', ref, sku, eta: '2030-06-01' })
    resumed.close()
  })

  // Last: it stops the suite's service (afterAll's stop then only reads the exit code).
  it('stops on SIGTERM with a reader still connected, and ends its stream', async () => {
    const stream = await readStream(`${service.url}/events/stream`)
    expect(stream.status).toBe(200)
    expect(await service.stop(), service.output()).toBe(0)
    await vi.waitFor(() => expect(stream.ended()).toBe(true))
  })
})
