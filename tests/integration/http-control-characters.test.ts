import { describe, expect, it } from 'vitest'
import { MalformedMessage, parseBatchQuantityMessage, parseCommand } from '../../src/entrypoints/command-schemas.ts'
import { appOnPglite } from './support.ts'

const CONTROL_CHARACTERS = ['\u0000', '\u0001', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f']
const hostile = (c: string) => `id${c}x`
const path = (id: string) => encodeURIComponent(id)

describe('an id with a control character or an unpaired surrogate', () => {
  const app = appOnPglite()

  const expectRefused = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
    const answer = await app().inject({ method, url, ...(payload && { payload }) })
    expect([method, url, answer.statusCode]).toEqual([method, url, 400])
    expect(answer.json()).toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(/must not contain control characters or unpaired surrogates$/),
    })
  }

  it.each(CONTROL_CHARACTERS.map((c) => [JSON.stringify(c), c]))('%s in a path is a 400', async (_name, c) => {
    const id = path(hostile(c))
    await expectRefused('GET', `/batches/${id}`)
    await expectRefused('PATCH', `/batches/${id}`, { qty: 1 })
    await expectRefused('GET', `/products/${id}`)
    await expectRefused('GET', `/products/${id}/availability?qty=1`)
    await expectRefused('GET', `/orders/${id}`)
    await expectRefused('GET', `/allocations/${id}`)
    await expectRefused('DELETE', `/allocations/${id}/sku-1`)
    await expectRefused('DELETE', `/allocations/order-1/${id}`)
  })

  it.each(CONTROL_CHARACTERS.map((c) => [JSON.stringify(c), c]))('%s in a body is a 400', async (_name, c) => {
    const id = hostile(c)
    await expectRefused('POST', '/batches', { ref: id, sku: 'sku-1', qty: 1, eta: null })
    await expectRefused('POST', '/batches', { ref: 'ref-1', sku: id, qty: 1, eta: null })
    await expectRefused('POST', '/add_batch', { ref: id, sku: 'sku-1', qty: 1, eta: null })
    await expectRefused('POST', '/allocations', { orderid: id, sku: 'sku-1', qty: 1 })
    await expectRefused('POST', '/allocate', { orderid: 'order-1', sku: id, qty: 1 })
  })

  it('is refused in a command from Redis, naming the problem', () => {
    for (const c of CONTROL_CHARACTERS) {
      const payload = JSON.stringify({ orderid: hostile(c), sku: 'sku-1', qty: 1 })
      expect(() => parseCommand('Allocate', payload)).toThrow(MalformedMessage)
      expect(() => parseCommand('Allocate', payload)).toThrow(
        /"orderid" must not contain control characters or unpaired surrogates/,
      )
      expect(() => parseBatchQuantityMessage(JSON.stringify({ batchref: hostile(c), qty: 1 }))).toThrow(
        MalformedMessage,
      )
    }
  })

  // Half of a UTF-16 pair has no UTF-8 form: JSON carries it escaped, a URL cannot carry it at all.
  it.each([
    ['\\ud800', '\ud800'],
    ['\\udfff', '\udfff'],
  ])('an unpaired surrogate %s in a body or a command is refused', async (_name, c) => {
    const id = hostile(c)
    await expectRefused('POST', '/batches', { ref: id, sku: 'sku-1', qty: 1, eta: null })
    await expectRefused('POST', '/allocations', { orderid: 'order-1', sku: id, qty: 1 })
    await expectRefused('POST', '/allocate', { orderid: id, sku: 'sku-1', qty: 1 })
    expect(() => parseCommand('Allocate', JSON.stringify({ orderid: id, sku: 'sku-1', qty: 1 }))).toThrow(
      /"orderid" must not contain control characters or unpaired surrogates/,
    )
  })

  it('leaves every other character alone', async () => {
    const id = `café "'; drop table batches; -- ../ 🛋️ \u0080\u00a0`
    const created = await app().inject({
      method: 'POST',
      url: '/batches',
      payload: { ref: id, sku: id, qty: 3, eta: null },
    })
    expect(created.statusCode).toBe(201)
    const read = await app().inject({ method: 'GET', url: `/batches/${path(id)}` })
    expect(read.json()).toMatchObject({ ref: id, sku: id })
  })
})
