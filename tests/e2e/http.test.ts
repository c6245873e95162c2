import { describe, expect, it, vi } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { runningOn, storageModes } from './support.ts'

describe.each(await storageModes())('the HTTP API on $name', (mode) => {
  const api = runningOn(mode)

  const addBatch = async (ref: string, sku: string, qty: number, eta: string | null) => {
    const answer = await api().post('/batches', { ref, sku, qty, eta })
    expect(answer.status, JSON.stringify(answer.body)).toBe(201)
    return answer.body
  }

  describe("the book's routes", () => {
    it('happy path returns 202 and batch is allocated', async () => {
      const orderid = randomOrderid()
      const [sku, othersku] = [randomSku(), randomSku('other')]
      const [earlybatch, laterbatch, otherbatch] = [randomBatchref('1'), randomBatchref('2'), randomBatchref('3')]
      for (const [ref, batchSku, eta] of [
        [laterbatch, sku, '2011-01-02'],
        [earlybatch, sku, '2011-01-01'],
        [otherbatch, othersku, null],
      ] as const) {
        const added = await api().post('/add_batch', { ref, sku: batchSku, qty: 100, eta })
        expect(added.status).toBe(201)
        expect(added.body).toBe('OK')
      }

      const allocated = await api().post('/allocate', { orderid, sku, qty: 3 })
      expect(allocated.status).toBe(202)
      expect(allocated.body).toEqual({ batchref: earlybatch })

      const allocations = await api().get(`/allocations/${orderid}`)
      expect(allocations.status).toBe(200)
      // The book compares for equality, so no field beyond its two.
      expect(allocations.body).toStrictEqual([{ sku, batchref: earlybatch }])
      const withQty = await api().get(`/allocations/${orderid}?include=qty`)
      expect(withQty.body).toStrictEqual([{ sku, batchref: earlybatch, qty: 3 }])
    })

    it('unhappy path returns 400 and error message', async () => {
      const [unknownSku, orderid] = [randomSku(), randomOrderid()]
      const answer = await api().post('/allocate', { orderid, sku: unknownSku, qty: 20 })
      expect(answer.status).toBe(400)
      expect(answer.body).toEqual({ message: `Invalid sku ${unknownSku}`, code: 'invalid_sku' })

      const allocations = await api().get(`/allocations/${orderid}`)
      expect(allocations.status).toBe(404)
      expect(allocations.body.code).toBe('unknown_order')
    })

    it('answers 202 with a null batchref when the line is out of stock', async () => {
      const sku = randomSku()
      await api().post('/add_batch', { ref: randomBatchref(), sku, qty: 5, eta: null })
      const answer = await api().post('/allocate', { orderid: randomOrderid(), sku, qty: 6 })
      expect(answer.status).toBe(202)
      expect(answer.body).toEqual({ batchref: null })
    })
  })

  describe('batches', () => {
    it('creates a batch, answers the same batch again with 200, and a different one under its ref with 409', async () => {
      const [ref, sku] = [randomBatchref(), randomSku()]
      const created = await api().post('/batches', { ref, sku, qty: 20, eta: '2028-02-29' })
      const batch = { ref, sku, eta: '2028-02-29', purchased: 20, allocated: 0, available: 20 }
      expect(created.status).toBe(201)
      expect(created.body).toEqual(batch)
      expect(created.headers.get('location')).toBe(`/batches/${ref}`)

      const again = await api().post('/batches', { ref, sku, qty: 20, eta: '2028-02-29' })
      expect(again.status).toBe(200)
      expect(again.body).toEqual(batch)

      for (const other of [
        { ref, sku, qty: 21, eta: '2028-02-29' },
        { ref, sku, qty: 20, eta: null },
        { ref, sku: randomSku(), qty: 20, eta: '2028-02-29' },
      ]) {
        const conflict = await api().post('/batches', other)
        expect(conflict.status).toBe(409)
        expect(conflict.body).toEqual({ message: expect.stringContaining(ref), code: 'batch_conflict' })
      }
      expect((await api().get(`/batches/${ref}`)).body).toEqual(batch)
    })

    it('shows a batch with its quantities, and 404 for an unknown one', async () => {
      const [ref, sku] = [randomBatchref(), randomSku()]
      await addBatch(ref, sku, 10, null)
      await api().post('/allocations', { orderid: randomOrderid(), sku, qty: 4 })
      const answer = await api().get(`/batches/${ref}`)
      expect(answer.status).toBe(200)
      expect(answer.body).toEqual({ ref, sku, eta: null, purchased: 10, allocated: 4, available: 6 })

      const unknown = randomBatchref()
      const missing = await api().get(`/batches/${unknown}`)
      expect(missing.status).toBe(404)
      expect(missing.body).toEqual({ message: `There is no batch ${unknown}`, code: 'unknown_batch' })
    })

    it('moves the newest lines of a shrunk batch to the other batch and says where each went', async () => {
      const sku = randomSku()
      const [warehouse, shipment] = [randomBatchref('warehouse'), randomBatchref('shipment')]
      await addBatch(warehouse, sku, 10, null)
      await addBatch(shipment, sku, 10, '2030-01-01')
      const [first, second] = [randomOrderid('first'), randomOrderid('second')]
      expect((await api().post('/allocations', { orderid: first, sku, qty: 6 })).body.batchref).toBe(warehouse)
      expect((await api().post('/allocations', { orderid: second, sku, qty: 4 })).body.batchref).toBe(warehouse)

      const answer = await api().patch(`/batches/${warehouse}`, { qty: 7 })
      expect(answer.status).toBe(200)
      expect(answer.body).toEqual({
        batch: { ref: warehouse, sku, eta: null, purchased: 7, allocated: 6, available: 1 },
        moved: [
          { orderid: second, sku, qty: 4, status: 'allocated', batchref: shipment, eta: '2030-01-01', expiresAt: null },
        ],
      })
      expect((await api().get(`/allocations/${second}`)).body).toEqual([{ sku, batchref: shipment }])
      expect((await api().get(`/batches/${shipment}`)).body.allocated).toBe(4)
    })

    it('reports a moved line that no batch can take as backordered, with a null batchref', async () => {
      const [ref, sku, orderid] = [randomBatchref(), randomSku(), randomOrderid()]
      await addBatch(ref, sku, 5, null)
      await api().post('/allocations', { orderid, sku, qty: 5 })
      const answer = await api().patch(`/batches/${ref}`, { qty: 1 })
      expect(answer.status).toBe(200)
      expect(answer.body.moved).toEqual([
        { orderid, sku, qty: 5, status: 'backordered', batchref: null, eta: null, expiresAt: null },
      ])
      expect((await api().get(`/allocations/${orderid}`)).status).toBe(404)
    })

    it('answers 404 when changing an unknown batch', async () => {
      const ref = randomBatchref()
      const answer = await api().patch(`/batches/${ref}`, { qty: 1 })
      expect(answer.status).toBe(404)
      expect(answer.body.code).toBe('unknown_batch')
    })
  })

  describe('allocations', () => {
    it('allocates a line with 201, idempotently, and treats another qty for the same line as a conflict', async () => {
      const [ref, sku, orderid] = [randomBatchref(), randomSku(), randomOrderid()]
      await addBatch(ref, sku, 10, null)
      const line = { orderid, sku, qty: 3 }
      const created = await api().post('/allocations', line)
      expect(created.status).toBe(201)
      const answer = { ...line, status: 'allocated', batchref: ref, eta: null, expiresAt: null }
      expect(created.body).toEqual(answer)

      const again = await api().post('/allocations', line)
      expect(again.status).toBe(201)
      expect(again.body).toEqual(answer)
      expect((await api().get(`/batches/${ref}`)).body.allocated).toBe(3)

      const conflict = await api().post('/allocations', { ...line, qty: 4 })
      expect(conflict.status).toBe(409)
      expect(conflict.body).toEqual({ message: expect.stringContaining(orderid), code: 'line_conflict' })
    })

    it('answers 409 out_of_stock naming the sku and the order when no batch can take the line', async () => {
      const [sku, orderid] = [randomSku(), randomOrderid()]
      await addBatch(randomBatchref(), sku, 2, null)
      const answer = await api().post('/allocations', { orderid, sku, qty: 3 })
      expect(answer.status).toBe(409)
      expect(answer.body.code).toBe('out_of_stock')
      expect(answer.body.message).toContain(sku)
      expect(answer.body.message).toContain(orderid)
    })

    it('answers 400 invalid_sku for an unknown sku', async () => {
      const sku = randomSku()
      const answer = await api().post('/allocations', { orderid: randomOrderid(), sku, qty: 1 })
      expect(answer.status).toBe(400)
      expect(answer.body).toEqual({ message: `Invalid sku ${sku}`, code: 'invalid_sku' })
    })

    it('deallocates a line with 204, then answers 404 for it', async () => {
      const [ref, sku, orderid] = [randomBatchref(), randomSku(), randomOrderid()]
      await addBatch(ref, sku, 10, null)
      await api().post('/allocations', { orderid, sku, qty: 7 })

      const deleted = await api().delete(`/allocations/${orderid}/${sku}`)
      expect(deleted.status).toBe(204)
      expect(deleted.body).toBe('')
      expect((await api().get(`/batches/${ref}`)).body.available).toBe(10)
      expect((await api().get(`/allocations/${orderid}`)).status).toBe(404)

      const again = await api().delete(`/allocations/${orderid}/${sku}`)
      expect(again.status).toBe(404)
      expect(again.body).toEqual({ message: `Order ${orderid} has no allocation of ${sku}`, code: 'not_allocated' })
      const unknownSku = await api().delete(`/allocations/${orderid}/${randomSku()}`)
      expect(unknownSku.status).toBe(404)
      expect(unknownSku.body.code).toBe('not_allocated')
    })
  })

  describe('products, events and health', () => {
    it("shows a sku's batches in allocation order with totals, and 404 for an unknown sku", async () => {
      const sku = randomSku()
      const [later, sooner, warehouse] = [randomBatchref('later'), randomBatchref('sooner'), randomBatchref('now')]
      await addBatch(later, sku, 10, '2031-05-01')
      await addBatch(sooner, sku, 10, '2030-05-01')
      await addBatch(warehouse, sku, 5, null)
      await api().post('/allocations', { orderid: randomOrderid(), sku, qty: 2 })

      const answer = await api().get(`/products/${sku}`)
      expect(answer.status).toBe(200)
      expect(answer.body.sku).toBe(sku)
      expect(answer.body.batches.map((b: { ref: string }) => b.ref)).toEqual([warehouse, sooner, later])
      expect(answer.body.batches[0]).toEqual({
        ref: warehouse,
        sku,
        eta: null,
        purchased: 5,
        allocated: 2,
        available: 3,
      })
      expect(answer.body.totals).toEqual({ purchased: 25, allocated: 2, available: 23, backordered: 0, held: 0 })
      // Read again, unchanged (the answer kept from the first read), then after a write (a new one).
      const again = await api().get(`/products/${sku}`)
      expect(again.headers.get('content-type')).toBe('application/json; charset=utf-8')
      expect(again.body).toEqual(answer.body)
      await api().post('/allocations', { orderid: randomOrderid(), sku, qty: 1 })
      const changed = await api().get(`/products/${sku}`)
      expect(changed.body.totals).toEqual({ purchased: 25, allocated: 3, available: 22, backordered: 0, held: 0 })

      const unknown = randomSku()
      const missing = await api().get(`/products/${unknown}`)
      expect(missing.status).toBe(404)
      expect(missing.body).toEqual({ message: `There is no product with sku ${unknown}`, code: 'unknown_product' })
    })

    it('lists events after an id, page by page', async () => {
      const start = (await api().get('/events?after=0&limit=1000')).body
      const [ref, sku, orderid] = [randomBatchref(), randomSku(), randomOrderid()]
      await addBatch(ref, sku, 10, null)
      await api().post('/allocations', { orderid, sku, qty: 2 })

      // Events show once every older transaction on the server has ended: poll, as a follower does.
      const page = await vi.waitFor(async () => {
        const answer = await api().get(`/events?after=${start.next}`)
        expect(answer.status).toBe(200)
        const ours = answer.body.events.filter((e: { sku?: string }) => e.sku === sku)
        expect(ours).toEqual([
          { id: expect.any(Number), type: 'BatchCreated', ref, sku, qty: 10, eta: null },
          { id: expect.any(Number), type: 'Allocated', orderid, sku, qty: 2, batchref: ref },
        ])
        return answer
      })
      expect(page.body.next).toBe(page.body.events.at(-1).id)

      const first = await api().get(`/events?after=${start.next}&limit=1`)
      expect(first.body.events).toHaveLength(1)
      const rest = await api().get(`/events?after=${first.body.next}`)
      expect([...first.body.events, ...rest.body.events]).toEqual(page.body.events)

      const beyond = await api().get(`/events?after=${page.body.next}`)
      expect(beyond.body).toEqual({ events: [], next: page.body.next })
    })

    it('answers the health check', async () => {
      expect(await api().get('/health')).toMatchObject({ status: 200, body: { status: 'ok' } })
    })

    it('serves an OpenAPI 3.1 document listing every route, and the interactive docs', async () => {
      const document = await api().get('/openapi.json')
      expect(document.status).toBe(200)
      expect(document.body.openapi).toMatch(/^3\.1\.\d+$/)
      expect(Object.keys(document.body.paths).sort()).toEqual(
        [
          '/add_batch',
          '/allocate',
          '/allocations',
          '/allocations/{orderid}',
          '/allocations/{orderid}/{sku}',
          '/batches',
          '/batches/bulk',
          '/batches/{ref}',
          '/batches/{ref}/moves',
          '/events',
          '/events/stream',
          '/health',
          '/ready',
          '/metrics',
          '/orders/{orderid}',
          '/products',
          '/products/{sku}',
          '/products/{sku}/availability',
          '/products/{sku}/lines',
        ].sort(),
      )
      expect(Object.keys(document.body.paths['/batches/{ref}']).sort()).toEqual(['get', 'patch'])

      const docs = await api().get('/docs')
      expect(docs.status).toBe(200)
      expect(docs.body).toContain('swagger')
    })
  })

  describe('bad input', () => {
    const line = () => ({ orderid: randomOrderid(), sku: randomSku(), qty: 1 })
    const batch = () => ({ ref: randomBatchref(), sku: randomSku(), qty: 10, eta: null })
    const { qty: _qty, ...lineWithoutQty } = line()
    const long = 'x'.repeat(256)

    const cases: Array<[name: string, path: string, body: unknown, field: string | null]> = [
      ['a missing field', '/allocations', lineWithoutQty, 'qty'],
      ['an unknown field', '/allocations', { ...line(), colour: 'red' }, 'colour'],
      ['a number for an id', '/allocations', { ...line(), sku: 42 }, 'sku'],
      ['qty 0', '/allocations', { ...line(), qty: 0 }, 'qty'],
      ['qty -1', '/allocations', { ...line(), qty: -1 }, 'qty'],
      ['qty 1.5', '/allocations', { ...line(), qty: 1.5 }, 'qty'],
      ['qty "5"', '/allocations', { ...line(), qty: '5' }, 'qty'],
      ['qty 1e300', '/allocations', { ...line(), qty: 1e300 }, 'qty'],
      ['qty 2147483648', '/allocations', { ...line(), qty: 2_147_483_648 }, 'qty'],
      ['qty null', '/allocate', { ...line(), qty: null }, 'qty'],
      ['an empty orderid', '/allocations', { ...line(), orderid: '' }, 'orderid'],
      ['a 256-character sku', '/allocate', { ...line(), sku: long }, 'sku'],
      ['a 256-character ref', '/batches', { ...batch(), ref: long }, 'ref'],
      ['eta 2026-02-30', '/batches', { ...batch(), eta: '2026-02-30' }, 'eta'],
      ['eta 0000-01-01 (PostgreSQL has no year 0)', '/batches', { ...batch(), eta: '0000-01-01' }, 'eta'],
      ['an unpaired surrogate in an orderid', '/allocations', { ...line(), orderid: 'order-\ud800' }, 'orderid'],
      ['an unpaired surrogate in a ref', '/add_batch', { ...batch(), ref: '\udfff' }, 'ref'],
      ['eta "tomorrow"', '/add_batch', { ...batch(), eta: 'tomorrow' }, 'eta'],
      ['eta as a timestamp', '/batches', { ...batch(), eta: '2026-03-01T00:00:00Z' }, 'eta'],
      ['a missing eta', '/batches', { ref: randomBatchref(), sku: randomSku(), qty: 1 }, 'eta'],
      ['qty 0 for a batch', '/batches', { ...batch(), qty: 0 }, 'qty'],
      ['an array body', '/allocations', [line()], null],
      ['a string body', '/allocations', 'hello', null],
    ]

    it.each(cases)('answers 400 with a sentence to %s', async (_name, path, body, field) => {
      const answer = await api().post(path, body)
      expect(answer.status, JSON.stringify(answer.body)).toBe(400)
      expect(answer.body.code).toBe('validation_failed')
      expect(answer.body.message).toMatch(/^The .+ (must|is) /)
      if (field) expect(answer.body.message).toContain(`"${field}"`)
      expect(answer.body.details[0]).toMatchObject({ location: 'body', field })
    })

    it('answers 400 to a qty that is not an integer when changing a batch', async () => {
      const answer = await api().patch(`/batches/${randomBatchref()}`, { qty: '5' })
      expect(answer.status).toBe(400)
      expect(answer.body.message).toBe('The field "qty" must be an integer')
    })

    it('accepts an id of exactly 255 characters and a leap day', async () => {
      const sku = 'y'.repeat(255)
      const answer = await api().post('/allocations', { ...line(), sku })
      expect(answer.status).toBe(400)
      expect(answer.body.code).toBe('invalid_sku')
      expect((await api().post('/batches', { ...batch(), eta: '2028-02-29' })).status).toBe(201)
    })

    it('answers 400 to a path or query parameter out of bounds', async () => {
      const longRef = await api().get(`/batches/${'r'.repeat(256)}`)
      expect(longRef.status).toBe(400)
      expect(longRef.body.message).toBe('The path parameter "ref" must be at most 255 characters long')
      for (const query of ['limit=0', 'limit=1001', 'limit=x', 'after=-1', 'after=1.5', 'colour=red']) {
        const answer = await api().get(`/events?${query}`)
        expect(answer.status, query).toBe(400)
        expect(answer.body.message, query).toMatch(/^The query parameter "\w+" /)
      }
    })

    it('answers 400 to a body that is not JSON, or empty', async () => {
      const broken = await api().request('POST', '/allocations', undefined, { raw: '{"orderid": "o1", ' })
      expect(broken.status).toBe(400)
      expect(broken.body).toEqual({ message: 'The request body is not valid JSON', code: 'invalid_json' })
      const empty = await api().request('POST', '/allocations', undefined, { raw: '' })
      expect(empty.status).toBe(400)
      expect(empty.body.code).toBe('invalid_json')
      const none = await api().request('POST', '/allocations')
      expect(none.status).toBe(400)
      expect(none.body.message).toBe('The request body must be a JSON object')
    })

    it('answers 415 to a body that is not sent as JSON', async () => {
      const raw = JSON.stringify(line())
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
        const answer = await api().request('POST', '/allocations', undefined, { raw, contentType })
        expect(answer.status, contentType).toBe(415)
        expect(answer.body.code).toBe('unsupported_media_type')
      }
    })

    it('answers 413 to a body over 1 MiB', async () => {
      const answer = await api().post('/allocations', { ...line(), padding: 'p'.repeat(1_048_576) })
      expect(answer.status).toBe(413)
      expect(answer.body).toEqual({
        message: 'The request body is larger than the limit of 1 MiB',
        code: 'body_too_large',
      })
    })

    it('answers 404 with the error shape to an unknown route', async () => {
      const answer = await api().get('/nowhere')
      expect(answer.status).toBe(404)
      expect(answer.body).toEqual({ message: 'There is no route GET /nowhere', code: 'not_found' })
    })
  })
})
