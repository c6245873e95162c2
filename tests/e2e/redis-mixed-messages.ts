import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { type Random, randomOf } from '../support/seeded-random.ts'
import { type BatchPlan, type Body, newBatch, uniqueEta, uniqueQty } from './redis-mixed-seeded.ts'

export type Outcome =
  | 'applied'
  | 'MalformedMessage'
  | 'InvalidSku'
  | 'UnknownBatch'
  | 'BatchConflict'
  | 'LineConflict'
  | 'NotAllocated'
  | 'HoldWithBackorder'
export type Planned = Readonly<{
  fields: string[]
  allowed: readonly Outcome[]
  /** The command, when the entry is well formed. */
  command?: Readonly<{ type: string } & Body>
  /** Entries of which exactly one is applied: one line sent with two quantities. */
  oneOf?: string
}>
export type Sent = Planned & { id: string }
export type Published = Readonly<{ text: string; valid: boolean; batchref?: string; qty?: number }>

/**
 * The stream's entries of a seed, in the order they are added. A new line is sometimes sent again as is
 * (idempotent), or with another qty (one of the two is a conflict), or cancelled some entries later.
 */
export function streamPlan(seed: number, skus: string[], initial: BatchPlan[]): () => Planned {
  const rng = randomOf(seed)
  const batches = [...initial]
  const later = new Map<number, Planned[]>()
  const cancellable: Array<{ orderid: string; sku: string }> = []
  let n = 0
  const schedule = (planned: Planned, from: number, to: number) => {
    const at = n + rng.int(from, to)
    later.set(at, [...(later.get(at) ?? []), planned])
  }
  const entry = ({ type, ...payload }: { type: string } & Body, allowed: Outcome[], oneOf?: string): Planned => ({
    fields: ['type', type, 'payload', JSON.stringify(payload)],
    allowed,
    command: { type, ...payload },
    ...(oneOf && { oneOf }),
  })
  const cancel = (line: { orderid: string; sku: string }, allowed: Outcome[]) =>
    entry({ type: 'Deallocate', orderid: line.orderid, sku: line.sku }, allowed)

  function fresh(): Planned {
    const r = rng.next()
    const plenty = Math.floor(n / 150) % 2 === 1
    if (r < 0.4) {
      const line = { orderid: `stream-${seed}-${n}`, sku: rng.pick(skus), qty: rng.int(1, 4) }
      const kind = rng.next()
      const options = kind < 0.4 ? {} : kind < 0.75 ? { backorder: true } : { holdSeconds: rng.int(1, 3) }
      const allocate = { type: 'Allocate', ...line, ...options }
      const then = rng.next()
      if (then < 0.1 && 'backorder' in options) {
        const oneOf = `${line.sku} ${line.orderid}`
        schedule(entry({ ...allocate, qty: line.qty + 1 }, ['applied', 'LineConflict'], oneOf), 1, 20)
        return entry(allocate, ['applied', 'LineConflict'], oneOf)
      }
      if (then < 0.25) schedule(entry(allocate, ['applied']), 1, 20)
      if (rng.next() < 0.2) schedule(cancel(line, ['applied', 'NotAllocated']), 1, 60)
      cancellable.push(line)
      return entry(allocate, ['applied'])
    }
    if (r < 0.52) {
      const batch = rng.pick(batches)
      const qty = uniqueQty(rng, batch, 0, plenty ? 10 : 1, plenty ? 30 : 12)
      return entry(
        { type: 'ChangeBatchQuantity', ref: batch.ref, qty },
        batch.initial ? ['applied'] : ['applied', 'UnknownBatch'],
      )
    }
    if (r < 0.6) {
      const batch = rng.pick(batches)
      const eta = uniqueEta(rng, batch, 0)
      return entry(
        { type: 'ChangeBatchEta', ref: batch.ref, eta },
        batch.initial ? ['applied'] : ['applied', 'UnknownBatch'],
      )
    }
    if (r < 0.65) {
      const { batch, body } = newBatch(rng, 0, 'stream', rng.pick(skus), plenty ? 6 : 1, plenty ? 18 : 6)
      batches.push(batch)
      // Sent twice, the one applied second (either) finds the same batch unless a change reached it between.
      const create = { type: 'CreateBatch', ...body }
      if (rng.next() > 0.3) return entry(create, ['applied'])
      schedule(entry(create, ['applied', 'BatchConflict']), 1, 20)
      return entry(create, ['applied', 'BatchConflict'])
    }
    const sku = rng.pick(skus)
    const orderid = `stream-${seed}-${n}`
    if (r < 0.69) return cancel({ orderid, sku }, ['NotAllocated'])
    if (r < 0.72) return entry({ type: 'Allocate', orderid, sku: randomSku('unknown'), qty: 1 }, ['InvalidSku'])
    if (r < 0.75) {
      return entry({ type: 'Allocate', orderid, sku, qty: 1, backorder: true, holdSeconds: 5 }, ['HoldWithBackorder'])
    }
    if (r < 0.77) {
      const { ref } = rng.pick(initial)
      return entry({ type: 'CreateBatch', ref, sku: randomSku('other'), qty: 10, eta: null }, ['BatchConflict'])
    }
    if (r < 0.79) {
      const ref = randomBatchref('unknown')
      const command =
        rng.next() < 0.5 ? { type: 'ChangeBatchQuantity', ref, qty: 5 } : { type: 'ChangeBatchEta', ref, eta: null }
      return entry(command, ['UnknownBatch'])
    }
    if (r < 0.9)
      return { fields: malformed(rng, { orderid, sku, qty: 2 }, rng.pick(initial).ref), allowed: ['MalformedMessage'] }
    const line = cancellable.length > 0 ? rng.pick(cancellable) : { orderid, sku }
    return cancel(line, ['applied', 'NotAllocated'])
  }

  return () => {
    n += 1
    const due = later.get(n)
    const planned = due?.shift() ?? fresh()
    if (due?.length) later.set(n + 1, [...due, ...(later.get(n + 1) ?? [])])
    later.delete(n)
    return planned
  }
}

/** An entry the consumer cannot take: broken JSON, missing or unknown fields, values the HTTP API refuses. */
export function malformed(rng: Random, line: { orderid: string; sku: string; qty: number }, ref: string): string[] {
  const allocate = (payload: unknown) => ['type', 'Allocate', 'payload', JSON.stringify(payload)]
  return rng.pick([
    ['type', 'Allocate', 'payload', '{"orderid": '],
    ['payload', JSON.stringify(line)],
    ['type', 'Allocate'],
    ['foo', 'bar'],
    ['type', 'Reallocate', 'payload', JSON.stringify(line)],
    ['type', 'allocate', 'payload', JSON.stringify(line)],
    ['type', 'Allocate', 'payload', 'null'],
    allocate({ ...line, qty: String(line.qty) }),
    allocate({ ...line, qty: 0 }),
    allocate({ ...line, qty: 2_147_483_648 }),
    allocate({ ...line, priority: 'high' }),
    allocate({ ...line, orderid: `bad\u0001${line.orderid}` }),
    allocate({ ...line, orderid: '' }),
    allocate({ ...line, holdSeconds: 86_401 }),
    allocate({ ...line, backorder: 'yes' }),
    ['type', 'ChangeBatchEta', 'payload', JSON.stringify({ ref, eta: '2027-02-30' })],
    ['type', 'ChangeBatchQuantity', 'payload', JSON.stringify({ batchref: ref, qty: 5 })],
    ['type', 'CreateBatch', 'payload', JSON.stringify({ ref: `${ref}-x`, sku: line.sku, qty: 3, eta: '0000-01-01' })],
    // Commands of the service's own, never accepted from outside.
    ['type', 'ChangeBatch', 'payload', JSON.stringify({ ref, qty: 5, eta: null })],
    [
      'type',
      'ReleaseExpiredHolds',
      'payload',
      JSON.stringify({ holds: [{ sku: line.sku, orderids: [line.orderid] }] }),
    ],
    [
      'type',
      'CreateBatches',
      'payload',
      JSON.stringify({ batches: [{ ref: `${ref}-y`, sku: line.sku, qty: 3, eta: null }] }),
    ],
  ])
}

/** The book's channel: mostly real changes of the first batches, some of unknown batches, some malformed. */
export function channelPlan(seed: number, initial: BatchPlan[]): () => Published {
  const rng = randomOf(seed)
  let n = 0
  return () => {
    n += 1
    const r = rng.next()
    const plenty = Math.floor(n / 20) % 2 === 1
    if (r < 0.7) {
      const batch = rng.pick(initial)
      const qty = uniqueQty(rng, batch, 1, plenty ? 10 : 1, plenty ? 30 : 12)
      return { text: JSON.stringify({ batchref: batch.ref, qty }), valid: true, batchref: batch.ref, qty }
    }
    const unknown = randomBatchref('unknown')
    const text = rng.pick([
      JSON.stringify({ batchref: unknown, qty: 3 }),
      `not json ${unknown}`,
      JSON.stringify({ batchref: unknown, qty: '3' }),
      JSON.stringify({ ref: unknown, qty: 3 }),
      JSON.stringify({ batchref: unknown, qty: 0 }),
    ])
    return { text, valid: false }
  }
}
