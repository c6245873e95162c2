import { once } from 'node:events'
import net from 'node:net'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Service } from '../../src/bootstrap.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { readStream, type StreamEvent } from '../support/event-stream.ts'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

const patiently = { timeout: 30_000, interval: 20 }

describe.each(modes)('GET /events/stream (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service
  let app: App
  let url: string

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (!test) return
    service = serviceOn(test.database)
    app = buildApp(service, { eventStream: { heartbeatMs: 100, maxBufferedBytes: 256 * 1024 } })
    url = await app.listen({ host: '127.0.0.1', port: 0 })
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await test?.drop()
  })

  const addBatch = (ref: string, sku: string) =>
    service.bus.handle({ type: 'CreateBatch', ref, sku, qty: 10, eta: null })
  const refsOf = (events: StreamEvent[]) => events.map((e) => e.data.ref)

  it('starts with the events committed after it connects when given no id', async (ctx) => {
    if (!test) return ctx.skip()
    const [sku, before, after] = [randomSku(), randomBatchref(), randomBatchref()]
    await addBatch(before, sku)
    const stream = await readStream(`${url}/events/stream`)
    expect(stream.status).toBe(200)
    expect(stream.contentType).toBe('text/event-stream; charset=utf-8')
    await addBatch(after, sku)
    await vi.waitFor(() => expect(refsOf(stream.events)).toEqual([after]), patiently)
    expect(stream.events[0]).toMatchObject({ type: 'BatchCreated', data: { type: 'BatchCreated', ref: after, sku } })
    stream.close()
  })

  it('replays the events after Last-Event-ID (or ?after=), then streams the new ones', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    const refs = [randomBatchref(), randomBatchref(), randomBatchref(), randomBatchref()]
    const start = await service.views.lastEventId()
    for (const ref of refs.slice(0, 3)) await addBatch(ref, sku)
    const [first] = await service.views.events(start, 1)
    const byHeader = await readStream(`${url}/events/stream`, { 'last-event-id': String(first?.id) })
    // The header wins over the query, as for a browser reconnecting to the URL it first opened.
    const byQuery = await readStream(`${url}/events/stream?after=${start}`, { 'last-event-id': String(first?.id) })
    const byQueryOnly = await readStream(`${url}/events/stream?after=${start}`)
    await addBatch(refs[3] as string, sku)

    await vi.waitFor(() => expect(refsOf(byHeader.events)).toEqual(refs.slice(1)), patiently)
    await vi.waitFor(() => expect(refsOf(byQuery.events)).toEqual(refs.slice(1)), patiently)
    await vi.waitFor(() => expect(refsOf(byQueryOnly.events)).toEqual(refs), patiently)
    const ids = byQueryOnly.events.map((e) => e.id)
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
    expect(ids[0]).toBe(first?.id)
    for (const stream of [byHeader, byQuery, byQueryOnly]) stream.close()
  })

  it('serves two readers the same events in the same order', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    const alice = await readStream(`${url}/events/stream`)
    const bob = await readStream(`${url}/events/stream`)
    const batch = randomBatchref()
    await addBatch(batch, sku)
    for (const orderid of ['o1', 'o2', 'o3']) await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 2 })
    const expected = ['BatchCreated', 'Allocated', 'Allocated', 'Allocated']
    await vi.waitFor(() => expect(alice.events.map((e) => e.type)).toEqual(expected), patiently)
    await vi.waitFor(() => expect(bob.events).toEqual(alice.events), patiently)
    expect(alice.events[1]?.data).toEqual({ type: 'Allocated', orderid: 'o1', sku, qty: 2, batchref: batch })
    alice.close()
    bob.close()
  })

  it('gives a reader that joins while events are being committed each of them once, in order', async (ctx) => {
    if (!test) return ctx.skip()
    const sku = randomSku()
    const refs = Array.from({ length: 40 }, () => randomBatchref())
    const start = await service.views.lastEventId()
    const live = await readStream(`${url}/events/stream`)
    const writing = (async () => {
      for (const ref of refs) await addBatch(ref, sku)
    })()
    // Joins mid-way: it catches up from the database while the shared poll hands out the newer events.
    await vi.waitFor(async () => expect((await service.views.events(start, 100)).length).toBeGreaterThan(10), patiently)
    const joined = await readStream(`${url}/events/stream?after=${start}`)
    await writing
    await vi.waitFor(() => expect(refsOf(joined.events)).toEqual(refs), patiently)
    await vi.waitFor(() => expect(joined.events).toEqual(live.events), patiently)
    live.close()
    joined.close()
  })

  it('sends a comment line while nothing happens, so proxies keep the stream open', async (ctx) => {
    if (!test) return ctx.skip()
    const stream = await readStream(`${url}/events/stream`)
    await vi.waitFor(() => expect(stream.comments).toContain('heartbeat'), patiently)
    stream.close()
  })

  it('answers 400 with a sentence for a Last-Event-ID or an after that is not an event id', async (ctx) => {
    if (!test) return ctx.skip()
    for (const [path, headers] of [
      ['/events/stream', { 'last-event-id': 'yesterday' }],
      ['/events/stream?after=-1', {}],
      ['/events/stream?after=x', {}],
    ] as const) {
      const response = await fetch(`${url}${path}`, { headers })
      expect(response.status).toBe(400)
      const body = (await response.json()) as { code: string; message: string }
      expect(body.code).toBe('validation_failed')
      expect(body.message).toMatch(/last-event-id|after/)
    }
  })

  it('disconnects a reader that does not read, keeps serving the others, and the reader resumes after its last event', async (ctx) => {
    if (!test) return ctx.skip()
    const database = test.database
    // The readers of earlier tests may still be leaving: count only this test's two.
    await vi.waitFor(() => expect(service.feed.size).toBe(0), patiently)
    const sku = randomSku().padEnd(255, 's')
    const ref = randomBatchref().padEnd(250, 'r')
    // A reader that asks for the stream and then never reads: the kernel's buffers fill, then ours.
    const port = new URL(url).port
    const slow = net.connect(Number(port), '127.0.0.1')
    await once(slow, 'connect')
    slow.write(`GET /events/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
    slow.pause()
    const fast = await readStream(`${url}/events/stream`)
    await vi.waitFor(() => expect(service.feed.size).toBe(2), patiently)

    // Bursts of committed events (written straight to the outbox: thousands through the bus would only
    // slow the test) until the reader that does not read is let go.
    let total = 0
    while (service.feed.size === 2 && total < 40_000) {
      await sql`
        insert into outbox (sku, type, payload)
        select ${sku}::text, 'BatchQuantityChanged',
               jsonb_build_object('type', 'BatchQuantityChanged', 'ref', ${ref}::text || i, 'sku', ${sku}::text, 'qty', i)
        from generate_series(${total + 1}::int, ${total + 2000}::int) as i`.execute(database.db)
      total += 2000
      await vi.waitFor(() => expect(fast.events.length).toBe(total), patiently)
    }
    expect(service.feed.size).toBe(1)
    expect(fast.ended()).toBe(false)
    const all = fast.events.map((e) => e.id)
    expect(fast.events.map((e) => e.data.qty)).toEqual(Array.from({ length: total }, (_, i) => i + 1))

    // Once it reads again, it gets what was on its way, then the end of the stream.
    let received = ''
    slow.setEncoding('utf8').on('data', (chunk: string) => {
      received += chunk
    })
    slow.resume()
    await once(slow, 'close')
    const complete = received.slice(0, received.lastIndexOf('\n\n'))
    const seen = [...complete.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
    expect(seen.length).toBeGreaterThan(0)
    expect(seen.length).toBeLessThan(total)

    const resumed = await readStream(`${url}/events/stream`, { 'last-event-id': String(seen.at(-1)) })
    await vi.waitFor(() => expect(resumed.events.at(-1)?.id).toBe(all.at(-1)), patiently)
    expect([...seen, ...resumed.events.map((e) => e.id)]).toEqual(all)
    fast.close()
    resumed.close()
  })

  it('ends its open streams when the server closes', async (ctx) => {
    if (!test) return ctx.skip()
    const other = buildApp(service)
    const otherUrl = await other.listen({ host: '127.0.0.1', port: 0 })
    const stream = await readStream(`${otherUrl}/events/stream`)
    await other.close()
    await vi.waitFor(() => expect(stream.ended()).toBe(true), patiently)
  })
})
