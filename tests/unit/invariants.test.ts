import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Command } from '../../src/domain/commands.ts'
import { allocationPreference, Product } from '../../src/domain/model.ts'
import { bootstrapTestApp } from './fakes.ts'

const skus = ['CHAIR', 'TABLE', 'LAMP']
const refs = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']
const orderids = ['o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7', 'o8']
const etas = [null, '2026-12-01', '2026-12-15', '2027-01-10']

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    type: fc.constant('CreateBatch' as const),
    ref: fc.constantFrom(...refs),
    sku: fc.constantFrom(...skus),
    qty: fc.integer({ min: 1, max: 30 }),
    eta: fc.constantFrom(...etas),
  }),
  fc.record({
    type: fc.constant('Allocate' as const),
    orderid: fc.constantFrom(...orderids),
    sku: fc.constantFrom(...skus),
    qty: fc.integer({ min: 1, max: 12 }),
    backorder: fc.boolean(),
  }),
  fc.record({
    type: fc.constant('Allocate' as const),
    orderid: fc.constantFrom(...orderids),
    sku: fc.constantFrom(...skus),
    qty: fc.integer({ min: 1, max: 12 }),
    holdSeconds: fc.constantFrom(1, 600),
  }),
  fc.record({
    type: fc.constant('Deallocate' as const),
    orderid: fc.constantFrom(...orderids),
    sku: fc.constantFrom(...skus),
  }),
  fc.record({
    type: fc.constant('ChangeBatchQuantity' as const),
    ref: fc.constantFrom(...refs),
    qty: fc.integer({ min: 1, max: 30 }),
  }),
  fc.record({
    type: fc.constant('ChangeBatchEta' as const),
    ref: fc.constantFrom(...refs),
    eta: fc.constantFrom(...etas),
  }),
)

describe('invariants under any sequence of commands', () => {
  it('never over-allocates a batch, keeps its allocated qty equal to its lines, and allocates a line at most once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { maxLength: 40, size: 'max' }),
        fc.boolean(),
        async (commands, concurrently) => {
          const app = bootstrapTestApp()
          const run = (c: Command) => app.bus.handle(c).catch((error: Error) => error)
          const outcomes = concurrently ? await Promise.all(commands.map(run)) : []
          if (!concurrently) for (const c of commands) outcomes.push(await run(c))
          for (const outcome of outcomes) {
            if (outcome instanceof Error) expect(outcome.name).not.toBe('ConcurrencyConflict')
          }
          const { batches, allocations } = app.storage
          for (const batch of batches.values()) {
            expect(batch.allocated).toBeGreaterThanOrEqual(0)
            expect(batch.allocated).toBeLessThanOrEqual(batch.purchased)
            const lines = allocations.filter((a) => a.batchref === batch.ref)
            expect(batch.allocated).toBe(lines.reduce((sum, a) => sum + a.qty, 0))
            for (const line of lines) expect(line.sku).toBe(batch.sku)
          }
          const keys = allocations.map((a) => `${a.orderid}/${a.sku}`)
          expect(new Set(keys).size).toBe(keys.length)
        },
      ),
      { numRuns: 150 },
    )
  })

  it('always serves a line from the best batch that can take it when it was allocated', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ qty: fc.integer({ min: 1, max: 20 }), eta: fc.constantFrom(...etas) }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.integer({ min: 1, max: 20 }),
        (specs, qty) => {
          const product = new Product({ sku: 'X' })
          for (const [i, s] of specs.entries()) product.addBatch(`b${i}`, s.qty, s.eta)
          const fits = product.batches.filter((b) => b.availableQuantity >= qty)
          const best = fits.find((b) => fits.every((other) => allocationPreference(b, other) <= 0))
          expect(product.allocate({ orderid: 'o', sku: 'X', qty }).batchref).toBe(best?.ref ?? null)
        },
      ),
    )
  })
})
