import { randomOf } from '../support/seeded-random.ts'
import { type BatchPlan, type Body, newBatch, uniqueEta, uniqueQty } from './redis-mixed-seeded.ts'
import type { Answer } from './support.ts'

export type Requested = Readonly<{
  method: string
  path: string
  body?: Body
  allowed: readonly number[]
  answer: Answer
}>

export type PlannedRequest = Readonly<{
  method: string
  path: string
  body?: Body
  allowed: readonly number[]
  then?: (answer: Answer) => void
}>

/** HTTP writes on the same skus: lines of its own, cancelled sometimes; changes and new batches. */
export function httpPlan(seed: number, skus: string[], initial: BatchPlan[]): () => PlannedRequest {
  const rng = randomOf(seed)
  const batches = [...initial]
  const lines: Array<{ orderid: string; sku: string }> = []
  let n = 0
  return () => {
    n += 1
    const r = rng.next()
    const plenty = Math.floor(n / 60) % 2 === 1
    if (r < 0.4) {
      const line = { orderid: `http-${seed}-${n}`, sku: rng.pick(skus), qty: rng.int(1, 4) }
      const kind = rng.next()
      const options = kind < 0.4 ? {} : kind < 0.7 ? { backorder: true } : { holdSeconds: rng.int(1, 3) }
      lines.push(line)
      return {
        method: 'POST',
        path: '/allocations',
        body: { ...line, ...options },
        allowed: 'backorder' in options ? [201, 202] : [201, 409],
      }
    }
    if (r < 0.55 && lines.length > 0) {
      const [line] = lines.splice(rng.int(0, lines.length - 1), 1) as [{ orderid: string; sku: string }]
      return { method: 'DELETE', path: `/allocations/${line.orderid}/${line.sku}`, allowed: [204, 404] }
    }
    if (r < 0.85) {
      const batch = rng.pick(batches)
      const body: Body = {}
      if (r < 0.75) body.qty = uniqueQty(rng, batch, 2, plenty ? 10 : 1, plenty ? 30 : 12)
      if (r >= 0.7) body.eta = rng.next() < 0.3 ? null : uniqueEta(rng, batch, 2)
      return { method: 'PATCH', path: `/batches/${batch.ref}`, body, allowed: [200] }
    }
    if (r < 0.92) {
      const { batch, body } = newBatch(rng, 2, 'http', rng.pick(skus), 2, 12)
      // Changed by later requests only once it exists.
      return {
        method: 'POST',
        path: '/batches',
        body,
        allowed: [201],
        then: (a) => void (a.status === 201 && batches.push(batch)),
      }
    }
    return { method: 'GET', path: `/products/${rng.pick(skus)}`, allowed: [200] }
  }
}
