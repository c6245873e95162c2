import { describe, expect, it } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { runningOn, storageModes } from './support.ts'

describe.each(await storageModes())('what an operator reads before acting, on $name', (mode) => {
  const api = runningOn(mode)

  const post = async (path: string, body: object, status: number) => {
    const answer = await api().post(path, body)
    expect(answer.status, JSON.stringify(answer.body)).toBe(status)
  }

  it("lists a sku's lines oldest first, in every state or in one", async () => {
    const [sku, ref] = [randomSku(), randomBatchref()]
    const [a, b, c] = [randomOrderid(), randomOrderid(), randomOrderid()]
    await post('/batches', { ref, sku, qty: 5, eta: '2027-03-01' }, 201)
    await post('/allocations', { orderid: a, sku, qty: 3 }, 201)
    await post('/allocations', { orderid: b, sku, qty: 9, backorder: true }, 202)
    await post('/allocations', { orderid: c, sku, qty: 2, holdSeconds: 600 }, 201)

    const all = await api().get(`/products/${sku}/lines`)
    expect(all.status).toBe(200)
    expect(all.body.sku).toBe(sku)
    expect(all.body.lines.map((l: { orderid: string; status: string }) => [l.orderid, l.status])).toEqual([
      [a, 'allocated'],
      [b, 'backordered'],
      [c, 'held'],
    ])
    expect(all.body.lines[0]).toEqual({
      orderid: a,
      sku,
      qty: 3,
      status: 'allocated',
      batchref: ref,
      eta: '2027-03-01',
      expiresAt: null,
    })
    const waiting = await api().get(`/products/${sku}/lines?status=backordered`)
    expect(waiting.body.lines).toEqual([
      { orderid: b, sku, qty: 9, status: 'backordered', batchref: null, eta: null, expiresAt: null },
    ])
    expect(all.body.next).toBeNull()
    // A page at a time: each `next` read on as `after`, until it is null.
    const seen: string[] = []
    let after: number | null = 0
    while (after !== null) {
      const page = await api().get(`/products/${sku}/lines?limit=1&after=${after}`)
      expect(page.status).toBe(200)
      seen.push(...page.body.lines.map((l: { orderid: string }) => l.orderid))
      after = page.body.next
    }
    expect(seen).toEqual([a, b, c])
  })

  it('answers 404 for the lines of an unknown sku and 400 with a sentence for a bad status or limit', async () => {
    const unknown = await api().get(`/products/${randomSku()}/lines`)
    expect(unknown.status).toBe(404)
    expect(unknown.body.code).toBe('unknown_product')
    for (const query of ['status=shipped', 'limit=0', 'limit=x', 'after=-1', 'after=x']) {
      const answer = await api().get(`/products/${randomSku()}/lines?${query}`)
      expect(answer.status).toBe(400)
      expect(answer.body.message).toMatch(/status|limit|after/)
    }
  })

  it('tells which lines a smaller batch would move and where, the newest first, and changes nothing', async () => {
    const [sku, shrinking, other] = [randomSku(), randomBatchref(), randomBatchref()]
    const [a, b, c] = [randomOrderid(), randomOrderid(), randomOrderid()]
    await post('/batches', { ref: shrinking, sku, qty: 10, eta: null }, 201)
    await post('/allocations', { orderid: a, sku, qty: 4 }, 201)
    await post('/allocations', { orderid: b, sku, qty: 3 }, 201)
    await post('/allocations', { orderid: c, sku, qty: 3, holdSeconds: 600 }, 201)
    await post('/batches', { ref: other, sku, qty: 3, eta: '2027-05-01' }, 201)

    const preview = await api().get(`/batches/${shrinking}/moves?qty=4`)
    expect(preview.status).toBe(200)
    // The two newest leave; placed oldest first, the allocated one takes the other batch and the hold,
    // with nowhere left to go, is released.
    expect(preview.body).toEqual({
      ref: shrinking,
      qty: 4,
      moved: [
        { orderid: c, sku, qty: 3, status: 'released', batchref: null },
        { orderid: b, sku, qty: 3, status: 'allocated', batchref: other },
      ],
    })
    expect((await api().get(`/batches/${shrinking}`)).body).toMatchObject({ purchased: 10, allocated: 10 })
    expect((await api().get(`/batches/${shrinking}/moves?qty=10`)).body.moved).toEqual([])

    const changed = await api().patch(`/batches/${shrinking}`, { qty: 4 })
    expect(changed.status).toBe(200)
    // The change does what the preview said, each line as it is now.
    expect(changed.body.moved).toEqual([
      { orderid: c, sku, qty: 3, status: 'released', batchref: null, eta: null, expiresAt: null },
      { orderid: b, sku, qty: 3, status: 'allocated', batchref: other, eta: '2027-05-01', expiresAt: null },
    ])
    expect((await api().get(`/orders/${b}`)).body.lines[0]).toMatchObject({ status: 'allocated', batchref: other })
    expect((await api().get(`/orders/${c}`)).status).toBe(404)
  })

  it('leaves on a shrunk batch a line the room left can take back, in the preview and the change', async () => {
    const [sku, ref] = [randomSku(), randomBatchref()]
    const [a, b, c] = [randomOrderid(), randomOrderid(), randomOrderid()]
    await post('/batches', { ref, sku, qty: 20, eta: null }, 201)
    await post('/allocations', { orderid: a, sku, qty: 10 }, 201)
    await post('/allocations', { orderid: b, sku, qty: 7 }, 201)
    const held = await api().post('/allocations', { orderid: c, sku, qty: 1, holdSeconds: 600 })
    // 18 on 15: c and b come off; b (7) fits nowhere, c (1) fits the room left, on its own batch.
    const backordered = { orderid: b, sku, qty: 7, status: 'backordered', batchref: null }
    expect((await api().get(`/batches/${ref}/moves?qty=15`)).body.moved).toEqual([backordered])
    const changed = await api().patch(`/batches/${ref}`, { qty: 15 })
    expect(changed.body.moved).toEqual([{ ...backordered, eta: null, expiresAt: null }])
    expect((await api().get(`/orders/${c}`)).body.lines).toEqual([held.body])
  })

  it('answers 404 unknown_batch for the moves of an unknown batch and 400 without a qty', async () => {
    const unknown = await api().get(`/batches/${randomBatchref()}/moves?qty=1`)
    expect(unknown.status).toBe(404)
    expect(unknown.body.code).toBe('unknown_batch')
    const missing = await api().get(`/batches/${randomBatchref()}/moves`)
    expect(missing.status).toBe(400)
    expect(missing.body.message).toMatch(/qty/)
  })
})
