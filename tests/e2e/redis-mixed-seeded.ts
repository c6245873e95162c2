import { randomBatchref } from '../support/random-refs.ts'
import type { Random } from '../support/seeded-random.ts'

export type Body = Record<string, unknown>

/** A batch and the quantities and etas it was given, so that each change sets a value no other change sets. */
export type BatchPlan = { ref: string; sku: string; initial: boolean; qtys: Set<number>; etas: Set<string | null> }

/**
 * A quantity no change of the batch has set: each source of changes takes its own residue modulo 3, so an
 * event `BatchQuantityChanged(ref, qty)` names the one message that asked for it.
 */
export function uniqueQty(rng: Random, batch: BatchPlan, source: number, lo: number, hi: number): number {
  for (let value = 0; ; hi += 3) {
    for (let i = 0; i < 20; i++) {
      value = rng.int(lo, hi)
      value += source - (value % 3)
      if (value >= 1 && !batch.qtys.has(value)) return batch.qtys.add(value), value
    }
  }
}

/** A batch to create, with a qty and an eta (or none, 30% of them) of `source`'s own. */
export function newBatch(rng: Random, source: number, name: string, sku: string, lo: number, hi: number) {
  const batch: BatchPlan = { ref: randomBatchref(name), sku, initial: false, qtys: new Set(), etas: new Set() }
  const qty = uniqueQty(rng, batch, source, lo, hi)
  const eta = rng.next() < 0.3 ? null : uniqueEta(rng, batch, source)
  return { batch, body: { ref: batch.ref, sku, qty, eta } }
}

/** An eta no change of the batch has set, by the same rule as `uniqueQty`. */
export function uniqueEta(rng: Random, batch: BatchPlan, source: number): string {
  for (;;) {
    const day = rng.int(0, 900)
    const eta = new Date(Date.UTC(2027, 0, 1 + day - (day % 3) + source)).toISOString().slice(0, 10)
    if (!batch.etas.has(eta)) return batch.etas.add(eta), eta
  }
}
