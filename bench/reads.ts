import { read } from './load.ts'
import type { Service } from './service.ts'
import { type Measure, progress, type RunRecord, type Settings } from './settings.ts'
import { hasWrk, wrkRead } from './wrk.ts'

/** Read-your-write checks: lines written through one process, read at once through another (or the same). */
export type Freshness = Readonly<{ writes: number; stale: number; samples: readonly string[] }>

/**
 * `GET /products/{sku}` over random skus, then `GET /orders/{orderid}` over the orders `orders` made, 10
 * connections each, with autocannon and then, if it is on the PATH, with wrk; then the freshness check.
 */
export async function reads(
  service: Service,
  measure: Measure,
  settings: Settings,
  skus: readonly string[],
  orderids: readonly string[],
): Promise<RunRecord[]> {
  const spec = { url: service.url, connections: 10, durationS: settings.durationS }
  const productPath = (sku: string) => `/products/${encodeURIComponent(sku)}`
  const orderPath = (orderid: string) => `/orders/${encodeURIComponent(orderid)}`
  const both = async (load: typeof read, suffix: '' | '-wrk') => [
    await measure(`reads-product${suffix}`, 10, skus, { load: () => load({ ...spec, keys: skus }, productPath) }),
    await measure(`reads-order${suffix}`, 10, skus, {
      load: () => load({ ...spec, keys: orderids }, orderPath),
      details: { orders: orderids.length },
    }),
  ]
  const runs = await both(read, '')
  if (!(await hasWrk())) {
    progress('wrk is not on the PATH: reads measured with autocannon only (apt-get install wrk)')
    return runs
  }
  // Again with wrk, whose client costs the shared cores a fraction of autocannon's: the targets take these.
  return [...runs, ...(await both(wrkRead, '-wrk'))]
}

/**
 * Writes `n` lines one at a time through `writer` and reads each back at once through `reader`: the line
 * in `GET /orders/{orderid}`, and the product's allocated total up by at least its qty in
 * `GET /products/{sku}`. Any other answer is stale data.
 */
export async function freshness(
  writer: string,
  reader: string,
  skus: readonly string[],
  orderPrefix: string,
  n = 200,
): Promise<Freshness> {
  let stale = 0
  const samples: string[] = []
  const json = async (url: string, init?: RequestInit) => {
    const response = await fetch(url, init)
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }
  for (let i = 0; i < n; i++) {
    const sku = skus[i % skus.length] as string
    const orderid = `${orderPrefix}-${i}`
    const before = await json(`${reader}/products/${encodeURIComponent(sku)}`)
    const allocatedBefore = (before.body.totals as { allocated: number }).allocated
    const written = await json(`${writer}/allocations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orderid, sku, qty: 1 }),
    })
    if (written.status !== 201) throw new Error(`POST /allocations answered ${written.status}`)
    const [order, product] = await Promise.all([
      json(`${reader}/orders/${encodeURIComponent(orderid)}`),
      json(`${reader}/products/${encodeURIComponent(sku)}`),
    ])
    const allocatedAfter = (product.body.totals as { allocated: number }).allocated
    if (order.status !== 200 || allocatedAfter < allocatedBefore + 1) {
      stale++
      if (samples.length < 5)
        samples.push(`${orderid}: order ${order.status}, allocated ${allocatedBefore} -> ${allocatedAfter}`)
    }
  }
  progress(`  read after write, ${writer === reader ? 'same process' : 'another process'}: ${stale} stale of ${n}`)
  return { writes: n, stale, samples }
}
