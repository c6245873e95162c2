import { describe, expect, it, vi } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { eventsOfSku, runningOn, storageModes } from './support.ts'

describe.each(await storageModes())('order lines over HTTP on $name', (mode) => {
  const api = runningOn(mode)

  const addBatch = async (ref: string, sku: string, qty: number, eta: string | null) => {
    const answer = await api().post('/batches', { ref, sku, qty, eta })
    expect(answer.status, JSON.stringify(answer.body)).toBe(201)
  }

  it('keeps a line no batch can take as backordered (202) and fills it when a batch arrives', async () => {
    const [sku, orderid] = [randomSku(), randomOrderid()]
    await addBatch(randomBatchref(), sku, 2, null)
    const line = { orderid, sku, qty: 5 }
    const waiting = { ...line, status: 'backordered', batchref: null, eta: null, expiresAt: null }
    const answer = await api().post('/allocations', { ...line, backorder: true })
    expect(answer.status).toBe(202)
    expect(answer.body).toEqual(waiting)
    expect((await api().post('/allocations', line)).body).toEqual(waiting)
    expect((await api().get(`/allocations/${orderid}`)).status).toBe(404)
    expect((await api().get(`/products/${sku}`)).body.totals).toMatchObject({ backordered: 5, held: 0 })

    const ref = randomBatchref()
    await addBatch(ref, sku, 10, '2027-01-05')
    const order = await api().get(`/orders/${orderid}`)
    expect(order.status).toBe(200)
    expect(order.body).toEqual({
      orderid,
      lines: [{ ...line, status: 'allocated', batchref: ref, eta: '2027-01-05', expiresAt: null }],
    })
    expect((await api().get(`/allocations/${orderid}`)).body).toEqual([{ sku, batchref: ref }])
    expect((await api().get(`/products/${sku}`)).body.totals).toMatchObject({ backordered: 0, allocated: 5 })
  })

  it('holds a line (201), confirms it, and answers 409 line_conflict for another qty', async () => {
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await addBatch(ref, sku, 10, null)
    const line = { orderid, sku, qty: 3 }
    const before = Date.now()
    const held = await api().post('/allocations', { ...line, holdSeconds: 600 })
    expect(held.status).toBe(201)
    expect(held.body).toMatchObject({ ...line, status: 'held', batchref: ref, eta: null })
    const expiresAt = Date.parse(held.body.expiresAt)
    expect(expiresAt).toBeGreaterThanOrEqual(before + 600_000 - 1000)
    expect(held.body.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect((await api().get(`/products/${sku}`)).body.totals).toMatchObject({ allocated: 3, held: 3 })
    expect((await api().get(`/allocations/${orderid}`)).status).toBe(404)

    const conflict = await api().post('/allocations', { ...line, qty: 4 })
    expect(conflict.status).toBe(409)
    expect(conflict.body).toEqual({ message: expect.stringContaining(orderid), code: 'line_conflict' })

    const confirmed = await api().post('/allocations', line)
    expect(confirmed.status).toBe(201)
    expect(confirmed.body).toEqual({ ...line, status: 'allocated', batchref: ref, eta: null, expiresAt: null })
    expect((await api().get(`/allocations/${orderid}`)).body).toEqual([{ sku, batchref: ref }])
  })

  it('refuses a hold with a backorder, a hold out of range and a backorder that is not a boolean, writing nothing', async () => {
    const [sku, ref, orderid] = [randomSku(), randomBatchref(), randomOrderid()]
    await addBatch(ref, sku, 10, null)
    for (const extra of [
      { holdSeconds: 60, backorder: true },
      { holdSeconds: 0 },
      { holdSeconds: 86_401 },
      { holdSeconds: 1.5 },
      { backorder: 'yes' },
    ]) {
      const answer = await api().post('/allocations', { orderid, sku, qty: 1, ...extra })
      expect(answer.status, JSON.stringify(extra)).toBe(400)
      expect(answer.body.code).toBe('validation_failed')
      expect(answer.body.message).toMatch(/holdSeconds|backorder|hold/)
      // Every validation failure names its field, this rule across two fields included.
      expect(answer.body.details?.[0]?.field, JSON.stringify(extra)).toMatch(/^(holdSeconds|backorder)$/)
    }
    expect((await api().get(`/orders/${orderid}`)).status).toBe(404)
    expect((await api().get(`/batches/${ref}`)).body.allocated).toBe(0)
  })

  it('shows an order with its lines in every state, in the order they were made, and 404 without any', async () => {
    const orderid = randomOrderid()
    const [chairs, tables, lamps] = [randomSku('chair'), randomSku('table'), randomSku('lamp')]
    const [chairBatch, tableBatch] = [randomBatchref(), randomBatchref()]
    await addBatch(chairBatch, chairs, 5, null)
    await addBatch(tableBatch, tables, 5, '2027-03-01')
    await addBatch(randomBatchref(), lamps, 1, null)
    await api().post('/allocations', { orderid, sku: chairs, qty: 2 })
    const held = await api().post('/allocations', { orderid, sku: tables, qty: 1, holdSeconds: 300 })
    await api().post('/allocations', { orderid, sku: lamps, qty: 4, backorder: true })

    const order = await api().get(`/orders/${orderid}`)
    expect(order.body).toEqual({
      orderid,
      lines: [
        { orderid, sku: chairs, qty: 2, status: 'allocated', batchref: chairBatch, eta: null, expiresAt: null },
        {
          orderid,
          sku: tables,
          qty: 1,
          status: 'held',
          batchref: tableBatch,
          eta: '2027-03-01',
          expiresAt: held.body.expiresAt,
        },
        { orderid, sku: lamps, qty: 4, status: 'backordered', batchref: null, eta: null, expiresAt: null },
      ],
    })
    expect((await api().get(`/allocations/${orderid}`)).body).toEqual([{ sku: chairs, batchref: chairBatch }])

    for (const sku of [chairs, tables, lamps]) {
      expect((await api().delete(`/allocations/${orderid}/${sku}`)).status).toBe(204)
      expect((await api().delete(`/allocations/${orderid}/${sku}`)).status).toBe(404)
    }
    const gone = await api().get(`/orders/${orderid}`)
    expect(gone.status).toBe(404)
    expect(gone.body).toEqual({ message: `Order ${orderid} has no lines`, code: 'unknown_order' })
    expect((await api().get(`/batches/${chairBatch}`)).body.allocated).toBe(0)
    expect((await api().get(`/batches/${tableBatch}`)).body.allocated).toBe(0)
  })

  it('releases a hold that expires and gives its stock to a waiting line', async () => {
    const [sku, ref] = [randomSku(), randomBatchref()]
    const [buyer, waiting] = [randomOrderid('buyer'), randomOrderid('waiting')]
    await addBatch(ref, sku, 4, null)
    expect((await api().post('/allocations', { orderid: buyer, sku, qty: 4, holdSeconds: 1 })).status).toBe(201)
    expect((await api().post('/allocations', { orderid: waiting, sku, qty: 3, backorder: true })).status).toBe(202)
    await vi.waitFor(
      async () => {
        const order = await api().get(`/orders/${waiting}`)
        expect(order.body.lines[0]).toMatchObject({ status: 'allocated', batchref: ref })
      },
      { timeout: 20_000, interval: 200 },
    )
    expect((await api().get(`/orders/${buyer}`)).status).toBe(404)
    // Events show once every older transaction on the server has ended: poll, as a follower does.
    await vi.waitFor(async () => {
      const events = await eventsOfSku(api(), sku)
      expect(events.filter((e) => e.type === 'HoldReleased')).toEqual([
        { id: expect.any(Number), type: 'HoldReleased', orderid: buyer, sku, qty: 4, batchref: ref, reason: 'expired' },
      ])
    })
  })

  it('documents the new routes and fields in the OpenAPI document', async () => {
    const doc = (await api().get('/openapi.json')).body
    expect(doc.paths['/orders/{orderid}'].get).toBeDefined()
    const body = doc.paths['/allocations'].post.requestBody.content['application/json'].schema
    expect(Object.keys(body.properties)).toEqual(['orderid', 'sku', 'qty', 'backorder', 'holdSeconds'])
    expect(Object.keys(doc.paths['/allocations'].post.responses)).toEqual(expect.arrayContaining(['201', '202', '409']))
  })
})
