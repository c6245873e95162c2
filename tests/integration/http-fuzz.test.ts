import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { appOnPglite } from './support.ts'

/*
 * Malformed and odd-but-valid requests against the real HTTP app on PGlite. The same run, longer, by hand:
 *   FUZZ_RUNS=10000 npx vitest run tests/integration/http-fuzz.test.ts
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2500)
const SEED = Number(process.env.FUZZ_SEED ?? 20261205)
const TIME_LIMIT_MS = Number(process.env.FUZZ_TIME_LIMIT_MS ?? 120_000)

/** Ids a shop may really send: any text without control characters, up to 255 characters. */
const oddId = fc
  .oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
    fc.constantFrom(
      "O'Brien",
      '"quoted"',
      "x'; drop table batches; --",
      '1 OR 1=1',
      '../../etc/passwd',
      '%00',
      '%2F',
      'a/b',
      'a?b#c',
      '🛋️ sofa',
      'ÆØÅ-ñ-ü',
      '\u00a0',
      ' leading and trailing ',
      'null',
      '__proto__',
      'constructor',
    ),
    fc.string({ minLength: 255, maxLength: 255 }),
  )
  // `.` and `..` alone are dot segments: every URL parser resolves them away, encoded or not, so such an id
  // cannot be read back by path (it can by the lists); the contract does not refuse them (yet).
  .filter((id) => id.length >= 1 && id.length <= 255 && !/[\u0000-\u001f\u007f]/.test(id) && id !== '.' && id !== '..')

/** Anything a client could put where an id goes. */
const hostileId = fc.oneof(
  oddId,
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom(
    '',
    '\u0000',
    'a\u0000b',
    '\u001b[31m',
    '\u007f',
    '\n',
    '%',
    '%zz',
    '%%00',
    '%u0000',
    'x'.repeat(4000),
  ),
)

/** As a careful client writes an id into a path: `.` and `..` would otherwise be resolved away as segments. */
const inPath = (id: string) => encodeURIComponent(id).replaceAll('.', '%2E')

const segment = hostileId.map((id) => (id.startsWith('%') ? id : inPath(id)))

const qty = fc.oneof(
  fc.integer({ min: 1, max: 100 }),
  fc.constantFrom(0, -1, 2_147_483_648, 1.5, Number.MAX_SAFE_INTEGER, '5', null, true, [], {}, '1e3'),
)
const eta = fc.oneof(
  fc.constant(null),
  fc.constantFrom(
    '2027-01-31',
    '2026-02-30',
    '0000-01-01',
    '2027-13-01',
    '31/01/2027',
    '',
    20270131,
    '2027-01-31T00:00:00Z',
  ),
)

/** As `hostileId`, and halves of UTF-16 pairs, which a JSON body can carry (`"\\ud800"`) but a URL cannot. */
const bodyId = fc.oneof(hostileId, fc.constantFrom('\ud800', 'a\udfffb', '\udc00\ud800', `${'x'.repeat(254)}\ud83d`))

const field = <T>(value: fc.Arbitrary<T>) => fc.option(value, { nil: undefined })
const body = fc.oneof(
  fc.record({ ref: field(bodyId), sku: field(bodyId), qty: field(qty), eta: field(eta) }),
  fc.record({
    orderid: field(bodyId),
    sku: field(bodyId),
    qty: field(qty),
    backorder: field(fc.oneof(fc.boolean(), fc.constant('yes'))),
    holdSeconds: field(fc.oneof(fc.integer({ min: -5, max: 100_000 }), fc.constant('60'))),
  }),
  fc.record({ qty: field(qty), eta: field(eta), extra: field(fc.jsonValue()) }),
  fc.record({ batches: fc.array(fc.record({ ref: bodyId, sku: bodyId, qty, eta }), { maxLength: 5 }) }),
  fc.jsonValue(),
)

const path = fc.oneof(
  fc.tuple(segment).map(([a]) => `/batches/${a}`),
  fc.tuple(segment).map(([a]) => `/batches/${a}/moves?qty=1`),
  fc.tuple(segment).map(([a]) => `/products/${a}`),
  fc.tuple(segment, fc.string()).map(([a, q]) => `/products/${a}/availability?qty=${encodeURIComponent(q)}`),
  fc.tuple(segment).map(([a]) => `/products/${a}/lines`),
  fc.tuple(segment).map(([a]) => `/orders/${a}`),
  fc.tuple(segment).map(([a]) => `/allocations/${a}`),
  fc.tuple(segment, segment).map(([a, b]) => `/allocations/${a}/${b}`),
  fc.tuple(fc.string()).map(([q]) => `/events?after=${encodeURIComponent(q)}&limit=${encodeURIComponent(q)}`),
  fc.constantFrom(
    '/batches',
    '/batches/bulk',
    '/allocations',
    '/allocate',
    '/add_batch',
    '/products',
    '/health',
    '/ready',
    '/metrics',
    '/openapi.json',
    '/',
    '//',
    '/%',
    '/batches/%E0%A4%A',
    '/products/%ZZ',
    '/allocations?include=qty',
    '/orders/',
  ),
  fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
)

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS'),
  url: path,
  payload: fc.oneof(
    body.map((b) => ({ text: JSON.stringify(b) ?? 'null', type: 'application/json' })),
    fc.string({ unit: 'binary', maxLength: 200 }).map((text) => ({ text, type: 'application/json' })),
    fc.constantFrom(
      { text: '{"ref": "a", "sku": "b", "qty": 1, "eta": null, "__proto__": {"x": 1}}', type: 'application/json' },
      { text: '{"constructor": {"prototype": {"x": 1}}}', type: 'application/json' },
      { text: '[1, 2, 3]', type: 'application/json' },
      { text: '{"qty": 1e400}', type: 'application/json' },
      { text: 'qty=1', type: 'application/x-www-form-urlencoded' },
      { text: '<xml/>', type: 'text/xml' },
      { text: '', type: 'application/json' },
    ),
    fc.constant(undefined),
  ),
  requestId: fc.option(fc.string({ unit: 'binary', maxLength: 300 }), { nil: undefined }),
})

describe('the HTTP API under random input', () => {
  const app = appOnPglite()

  it('never answers 5xx to malformed or odd requests, and still serves afterwards', async () => {
    const fivehundreds: string[] = []
    await fc.assert(
      fc.asyncProperty(request, async ({ method, url, payload, requestId }) => {
        const headers: Record<string, string> = {}
        if (payload) headers['content-type'] = payload.type
        if (requestId !== undefined && /^[\t\x20-\x7e]*$/.test(requestId)) headers['x-request-id'] = requestId
        const answer = await app().inject({
          method: method as 'GET',
          url,
          headers,
          ...(payload && method !== 'GET' && method !== 'HEAD' && { payload: payload.text }),
        })
        if (answer.statusCode >= 500) fivehundreds.push(`${method} ${url} -> ${answer.statusCode} ${answer.body}`)
        expect(answer.statusCode).toBeLessThan(500)
      }),
      { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    )
    expect(fivehundreds).toEqual([])
    expect((await app().inject({ method: 'GET', url: '/health' })).statusCode).toBe(200)
    expect((await app().inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200)
  })

  it('stores odd-but-valid ids and reads them back unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(oddId, oddId, oddId, async (ref, sku, orderid) => {
        const batch = await app().inject({ method: 'POST', url: '/batches', payload: { ref, sku, qty: 5, eta: null } })
        // A ref already taken by another batch is a conflict, never a change of its ids.
        if (batch.statusCode === 409) return
        expect(batch.statusCode).toBeOneOf([200, 201])
        const read = await app().inject({ method: 'GET', url: `/batches/${inPath(ref)}` })
        expect(read.json()).toMatchObject({ ref, sku })
        const line = await app().inject({ method: 'POST', url: '/allocations', payload: { orderid, sku, qty: 1 } })
        if (line.statusCode === 409) return
        expect(line.statusCode).toBe(201)
        expect(line.json()).toMatchObject({ orderid, sku })
        const order = await app().inject({ method: 'GET', url: `/orders/${inPath(orderid)}` })
        expect(order.json().orderid).toBe(orderid)
        expect(order.json().lines).toContainEqual(
          expect.objectContaining({ orderid, sku, batchref: expect.any(String) }),
        )
        const product = await app().inject({ method: 'GET', url: `/products/${inPath(sku)}` })
        expect(product.json().sku).toBe(sku)
      }),
      {
        seed: SEED,
        numRuns: Math.max(50, Math.round(RUNS / 10)),
        interruptAfterTimeLimit: TIME_LIMIT_MS,
        markInterruptAsFailure: false,
      },
    )
  })
})
