import { summarise } from './load.ts'
import { addBatches } from './seed.ts'
import type { Service } from './service.ts'
import { progress, type Settings } from './settings.ts'

export type BacklogCase = Readonly<{
  waiting: number
  /** Seconds it took to put the waiting lines in place. */
  setupSeconds: number
  /** `POST /batches` of a batch of 10 that fills 10 waiting lines, answered once they are allocated (ms). */
  arrival: Readonly<{ mean: number; p50: number; p90: number; p99: number; max: number }>
  /** Whether each arrival left the batch fully allocated and the queue as long as before its top-up. */
  filled: boolean
}>

export type BacklogResult = Readonly<{ arrivals: number; cases: readonly BacklogCase[] }>

/**
 * Target 5: a batch arriving that fills 10 waiting lines costs at most 1.5x as much with 10,000 lines
 * waiting on the sku as with 10. Each case has its own sku, emptied by one allocation, then `waiting`
 * backordered lines of qty 1. An arrival is a new warehouse batch of 10, timed one at a time from the
 * request to the answer (which comes once its events, the filling included, are handled); 10 new lines
 * then top the queue up, untimed. The two cases alternate so drift on the machine hits both alike.
 */
export async function backlog(service: Service, settings: Settings): Promise<BacklogResult> {
  const cases = await Promise.all(
    settings.backlogSizes.map(async (waiting) => {
      const sku = `bench-${settings.stamp}-backlog-${waiting}`
      const started = performance.now()
      await addBatches(service.url, [{ ref: `${sku}-first`, sku, qty: 1, eta: null }])
      await post(service.url, '/allocations', { orderid: `${sku}-empties-it`, sku, qty: 1 }, 201)
      await backorder(service.url, sku, 0, waiting)
      return {
        sku,
        waiting,
        next: waiting,
        times: [] as number[],
        filled: true,
        setupSeconds: (performance.now() - started) / 1000,
      }
    }),
  )
  progress(`backlog: ${cases.map((c) => `${c.waiting} lines waiting in ${c.setupSeconds.toFixed(1)} s`).join(', ')}`)
  for (let arrival = 0; arrival < settings.backlogArrivals; arrival++) {
    for (const c of cases) {
      const ref = `${c.sku}-arrival-${arrival}`
      const started = performance.now()
      await post(service.url, '/batches', { ref, sku: c.sku, qty: 10, eta: null }, 201)
      c.times.push(performance.now() - started)
      const batch = (await (await fetch(`${service.url}/batches/${encodeURIComponent(ref)}`)).json()) as {
        available: number
      }
      if (batch.available !== 0) c.filled = false
      await backorder(service.url, c.sku, c.next, 10)
      c.next += 10
    }
  }
  for (const c of cases) {
    const product = (await (await fetch(`${service.url}/products/${encodeURIComponent(c.sku)}`)).json()) as {
      totals: { backordered: number }
    }
    if (product.totals.backordered !== c.waiting) c.filled = false
  }
  const result = {
    arrivals: settings.backlogArrivals,
    cases: cases.map(({ waiting, setupSeconds, times, filled }) => ({
      waiting,
      setupSeconds,
      arrival: summarise(times),
      filled,
    })),
  }
  for (const c of result.cases) {
    progress(
      `  ${c.waiting} waiting: an arrival takes ${c.arrival.p50.toFixed(1)} ms (p50), ${c.arrival.p90.toFixed(1)} ms (p90); filled: ${c.filled}`,
    )
  }
  return result
}

/** Lines `from` .. `from + n - 1` of the sku, qty 1, each kept waiting (202), 8 requests at a time. */
async function backorder(url: string, sku: string, from: number, n: number): Promise<void> {
  let next = from
  const worker = async () => {
    while (next < from + n) {
      const i = next++
      await post(url, '/allocations', { orderid: `${sku}-line-${i}`, sku, qty: 1, backorder: true }, 202)
    }
  }
  await Promise.all(Array.from({ length: Math.min(8, n) }, worker))
}

async function post(url: string, path: string, body: unknown, expected: number): Promise<void> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  if (response.status !== expected)
    throw new Error(`POST ${path} answered ${response.status}, not ${expected}: ${text}`)
}
