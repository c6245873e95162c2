import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { pgliteMode, runningOn, storageModes } from './support.ts'

describe.each(await storageModes())('promise dates on $name', (mode) => {
  const api = runningOn(mode)

  const addBatch = async (ref: string, sku: string, qty: number, eta: string | null) =>
    expect((await api().post('/batches', { ref, sku, qty, eta })).status).toBe(201)

  /** The id of the last event committed so far. */
  async function lastEventId(): Promise<number> {
    let after = 0
    for (;;) {
      const { body } = await api().get(`/events?after=${after}&limit=1000`)
      if (body.events.length === 0) return after
      after = body.next
    }
  }

  describe('GET /products/{sku}/availability', () => {
    it('promises the batch an allocation would take, and lists every batch in preference order with why', async () => {
      const sku = randomSku()
      const [warehouse, early, late] = [randomBatchref('warehouse'), randomBatchref('early'), randomBatchref('late')]
      await addBatch(late, sku, 50, '2027-03-01')
      await addBatch(warehouse, sku, 5, null)
      await addBatch(early, sku, 8, '2027-01-15')
      await api().post('/allocations', { orderid: randomOrderid(), sku, qty: 3 })

      const answer = await api().get(`/products/${sku}/availability?qty=10`)
      expect(answer.status).toBe(200)
      expect(answer.body).toEqual({
        sku,
        qty: 10,
        promise: { batchref: late, eta: '2027-03-01' },
        batches: [
          { ref: warehouse, eta: null, available: 2, fits: false },
          { ref: early, eta: '2027-01-15', available: 8, fits: false },
          { ref: late, eta: '2027-03-01', available: 50, fits: true },
        ],
      })
      expect((await api().get(`/products/${sku}/availability?qty=2`)).body.promise).toEqual({
        batchref: warehouse,
        eta: null,
      })
      expect((await api().get(`/products/${sku}/availability?qty=51`)).body.promise).toBeNull()
    })

    it('answers 404 unknown_product for an unknown sku', async () => {
      const sku = randomSku()
      const answer = await api().get(`/products/${sku}/availability?qty=1`)
      expect(answer.status).toBe(404)
      expect(answer.body).toEqual({ message: `There is no product with sku ${sku}`, code: 'unknown_product' })
    })

    it('answers 400 naming qty when it is missing, not a whole number, or out of range', async () => {
      const sku = randomSku()
      await addBatch(randomBatchref(), sku, 10, null)
      for (const query of ['', '?qty=', '?qty=0', '?qty=1.5', '?qty=x', '?qty=-3', '?qty=2147483648', '?qty=1&qty=2']) {
        const answer = await api().get(`/products/${sku}/availability${query}`)
        expect(answer.status, query).toBe(400)
        expect(answer.body.code, query).toBe('validation_failed')
        expect(answer.body.message, query).toMatch(/^The query parameter "qty" /)
      }
      expect((await api().get(`/products/${sku}/availability?qty=2147483647`)).status).toBe(200)
    })
  })

  describe('PATCH /batches/{ref}', () => {
    it('changes the eta alone: an arrived shipment is preferred, and the lines on it stay', async () => {
      const [sku, orderid] = [randomSku(), randomOrderid()]
      const [early, late] = [randomBatchref('early'), randomBatchref('late')]
      await addBatch(early, sku, 10, '2027-01-05')
      await addBatch(late, sku, 10, '2027-02-01')
      expect((await api().post('/allocations', { orderid, sku, qty: 4 })).body.batchref).toBe(early)

      const arrived = await api().patch(`/batches/${late}`, { eta: null })
      expect(arrived.status).toBe(200)
      expect(arrived.body).toEqual({
        batch: { ref: late, sku, eta: null, purchased: 10, allocated: 0, available: 10 },
        moved: [],
      })
      expect((await api().get(`/products/${sku}/availability?qty=1`)).body.promise).toEqual({
        batchref: late,
        eta: null,
      })
      expect((await api().post('/allocations', { orderid: randomOrderid(), sku, qty: 1 })).body.batchref).toBe(late)

      const delayed = await api().patch(`/batches/${early}`, { eta: '2027-04-30' })
      expect(delayed.body.batch).toEqual({
        ref: early,
        sku,
        eta: '2027-04-30',
        purchased: 10,
        allocated: 4,
        available: 6,
      })
      expect((await api().get(`/allocations/${orderid}`)).body).toEqual([{ sku, batchref: early }])
      expect((await api().get(`/orders/${orderid}`)).body.lines).toEqual([
        { orderid, sku, qty: 4, status: 'allocated', batchref: early, eta: '2027-04-30', expiresAt: null },
      ])
    })

    it('changes the qty alone, as before', async () => {
      const [ref, sku] = [randomBatchref(), randomSku()]
      await addBatch(ref, sku, 10, '2027-01-05')
      const answer = await api().patch(`/batches/${ref}`, { qty: 12 })
      expect(answer.status).toBe(200)
      expect(answer.body).toEqual({
        batch: { ref, sku, eta: '2027-01-05', purchased: 12, allocated: 0, available: 12 },
        moved: [],
      })
    })

    it('changes both in one answer, and moves the lines that no longer fit', async () => {
      const sku = randomSku()
      const [ref, other] = [randomBatchref(), randomBatchref('other')]
      const [first, second] = [randomOrderid('first'), randomOrderid('second')]
      await addBatch(ref, sku, 10, '2027-01-05')
      await addBatch(other, sku, 10, '2027-02-01')
      await api().post('/allocations', { orderid: first, sku, qty: 4 })
      await api().post('/allocations', { orderid: second, sku, qty: 4 })
      const before = await lastEventId()

      const answer = await api().patch(`/batches/${ref}`, { qty: 5, eta: '2027-01-20' })
      expect(answer.status).toBe(200)
      expect(answer.body).toEqual({
        batch: { ref, sku, eta: '2027-01-20', purchased: 5, allocated: 4, available: 1 },
        moved: [
          { orderid: second, sku, qty: 4, status: 'allocated', batchref: other, eta: '2027-02-01', expiresAt: null },
        ],
      })
      const { body } = await api().get(`/events?after=${before}&limit=1000`)
      const ours = body.events.filter((e: { sku: string }) => e.sku === sku)
      expect(ours.slice(0, 2)).toEqual([
        { id: expect.any(Number), type: 'BatchEtaChanged', ref, sku, eta: '2027-01-20' },
        { id: expect.any(Number), type: 'BatchQuantityChanged', ref, sku, qty: 5 },
      ])
    })

    it('refuses an empty body, a bad date, a bad qty and an unknown batch, and writes nothing', async () => {
      const [ref, sku] = [randomBatchref(), randomSku()]
      await addBatch(ref, sku, 10, '2027-01-05')
      const batch = (await api().get(`/batches/${ref}`)).body
      const before = await lastEventId()

      const refusals: Array<[body: unknown, status: number, message: RegExp]> = [
        [{}, 400, /^The request body must have at least one field/],
        [{ eta: '2027-02-30' }, 400, /^The field "eta" must be a real calendar date/],
        [{ eta: '05/01/2027' }, 400, /^The field "eta" must be a real calendar date/],
        [{ eta: 20270105 }, 400, /^The field "eta" must be a string or null/],
        [{ qty: 5, eta: 'soon' }, 400, /^The field "eta" /],
        [{ qty: 0, eta: null }, 400, /^The field "qty" must be at least 1/],
        [{ qty: 5, when: 'now' }, 400, /^The field "when" is not allowed/],
      ]
      for (const [body, status, message] of refusals) {
        const answer = await api().patch(`/batches/${ref}`, body)
        expect(answer.status, JSON.stringify(body)).toBe(status)
        expect(answer.body.code).toBe('validation_failed')
        expect(answer.body.message).toMatch(message)
      }
      const unknown = randomBatchref()
      for (const body of [{ eta: null }, { qty: 3, eta: '2027-01-01' }]) {
        const answer = await api().patch(`/batches/${unknown}`, body)
        expect(answer.status).toBe(404)
        expect(answer.body).toEqual({ message: `There is no batch ${unknown}`, code: 'unknown_batch' })
      }

      expect((await api().get(`/batches/${ref}`)).body).toEqual(batch)
      expect(await lastEventId()).toBe(before)
    })

    it('documents both forms and the availability route in the OpenAPI document', async () => {
      const { body } = await api().get('/openapi.json')
      const patch = body.paths['/batches/{ref}'].patch
      const schema = patch.requestBody.content['application/json'].schema
      expect(Object.keys(schema.properties)).toEqual(['qty', 'eta'])
      expect(schema.minProperties).toBe(1)
      const availability = body.paths['/products/{sku}/availability'].get
      expect(availability.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['qty', 'sku'])
    })
  })
})

describe('the promise through HTTP on embedded PGlite', () => {
  const api = runningOn(pgliteMode)
  const etas = [null, '2027-01-10', '2027-02-01', '2027-03-15']

  it('is the batch that the next allocation of the same qty takes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ qty: fc.integer({ min: 1, max: 12 }), eta: fc.constantFrom(...etas) }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 4 }),
        fc.integer({ min: 1, max: 14 }),
        async (batches, earlier, qty) => {
          const sku = randomSku('prop')
          for (const { qty: batchQty, eta } of batches) {
            expect((await api().post('/batches', { ref: randomBatchref(), sku, qty: batchQty, eta })).status).toBe(201)
          }
          for (const lineQty of earlier)
            await api().post('/allocations', { orderid: randomOrderid(), sku, qty: lineQty })

          const { body } = await api().get(`/products/${sku}/availability?qty=${qty}`)
          const allocated = await api().post('/allocations', { orderid: randomOrderid(), sku, qty })
          expect(body.promise?.batchref ?? null).toBe(allocated.status === 201 ? allocated.body.batchref : null)
        },
      ),
      { numRuns: 25 },
    )
  })
})
