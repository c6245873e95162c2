import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Command } from '../../src/domain/commands.ts'
import { bootstrapTestApp, type TestApp } from './fakes.ts'

const SKU = 'CHAIR'
const refs = ['r1', 'r2', 'r3', 'r4']
const orderids = ['o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7', 'o8', 'o9']
const etas = [null, '2026-12-01', '2027-01-10']

/** Time passes; the sweep of expired holds may come later (a hold can be past its expiry, not yet released). */
type Step = Command | Readonly<{ type: 'TimePasses'; seconds: number; sweep: boolean }>

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    type: fc.constant('CreateBatch' as const),
    ref: fc.constantFrom(...refs),
    sku: fc.constant(SKU),
    qty: fc.integer({ min: 1, max: 12 }),
    eta: fc.constantFrom(...etas),
  }),
  fc.record({
    type: fc.constant('Allocate' as const),
    orderid: fc.constantFrom(...orderids),
    sku: fc.constant(SKU),
    qty: fc.integer({ min: 1, max: 8 }),
    backorder: fc.constant(true),
    holdSeconds: fc.constant(null),
  }),
  fc.record({
    type: fc.constant('Allocate' as const),
    orderid: fc.constantFrom(...orderids),
    sku: fc.constant(SKU),
    qty: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({
    type: fc.constant('Allocate' as const),
    orderid: fc.constantFrom(...orderids),
    sku: fc.constant(SKU),
    qty: fc.integer({ min: 1, max: 10 }),
    holdSeconds: fc.constantFrom(10, 60, 300),
  }),
  fc.record({ type: fc.constant('Deallocate' as const), orderid: fc.constantFrom(...orderids), sku: fc.constant(SKU) }),
  fc.record({
    type: fc.constant('ChangeBatchQuantity' as const),
    ref: fc.constantFrom(...refs),
    qty: fc.integer({ min: 0, max: 20 }),
  }),
  fc.record({
    type: fc.constant('TimePasses' as const),
    seconds: fc.constantFrom(5, 30, 120, 400),
    sweep: fc.boolean(),
  }),
)

/** The lines the service accepted, by orderid, as its answers (not its storage) tell them. */
type Accepted = Map<string, number>

async function run(app: TestApp, s: Step, accepted: Accepted): Promise<void> {
  const eventsBefore = app.events().length
  let result: unknown = null
  if (s.type === 'TimePasses') {
    app.clock.advance(s.seconds)
    if (s.sweep) await app.relay.sweep()
  } else {
    try {
      result = await app.bus.handle(s)
    } catch (error) {
      expect(['LineConflict', 'NotAllocated', 'UnknownBatch', 'InvalidSku', 'BatchConflict']).toContain(
        (error as Error).name,
      )
    }
  }
  // A hold ends without a request only by expiring or losing its batch; both are told. (An expired hold
  // sent again ends, then the answer says what became of the line.)
  for (const event of app.events().slice(eventsBefore)) {
    if (event.type === 'HoldReleased' && event.reason !== 'cancelled') accepted.delete(event.orderid)
  }
  if (s.type === 'Allocate' && result !== null) {
    const { status } = result as { status: string }
    if (status === 'out_of_stock') accepted.delete(s.orderid)
    else accepted.set(s.orderid, s.qty)
  }
  if (s.type === 'Deallocate' && result !== null) accepted.delete(s.orderid)
}

describe('line invariants under any sequence of commands and time passing', () => {
  it('never oversells, keeps each batch equal to its lines, loses no line, and leaves no waiting line that fits', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 40, size: 'max' }), async (steps) => {
        const app = bootstrapTestApp()
        await app.bus.handle({ type: 'CreateBatch', ref: 'r0', sku: SKU, qty: 3, eta: null })
        const accepted: Accepted = new Map()
        for (const s of steps) {
          const waitingBefore = app.storage.allocations.filter((a) => a.status === 'backordered').map((a) => ({ ...a }))
          await run(app, s, accepted)
          const { batches, allocations } = app.storage
          for (const batch of batches.values()) {
            expect(batch.allocated).toBeGreaterThanOrEqual(0)
            expect(batch.allocated).toBeLessThanOrEqual(batch.purchased)
            const served = allocations.filter((a) => a.batchref === batch.ref)
            expect(served.every((a) => a.status === 'allocated' || a.status === 'held')).toBe(true)
            expect(batch.allocated).toBe(served.reduce((sum, a) => sum + a.qty, 0))
          }
          // Every accepted line is in exactly one state, with its qty, until it is cancelled or its hold ends.
          expect(new Map(allocations.map((a) => [a.orderid, a.qty]))).toEqual(accepted)
          expect(allocations).toHaveLength(accepted.size)
          for (const a of allocations) {
            expect(a.status === 'backordered').toBe(a.batchref === null)
            expect(a.status === 'held').toBe(a.expiresAt !== null)
          }
          const largest = Math.max(0, ...[...batches.values()].map((b) => b.purchased - b.allocated))
          const waiting = allocations.filter((a) => a.status === 'backordered')
          for (const w of waiting) expect(w.qty).toBeGreaterThan(largest)
          // Oldest first among those that fit: a waiting line passed over was larger than any filled after it.
          const filled = waitingBefore.filter((w) =>
            allocations.some((a) => a.id === w.id && a.status !== 'backordered'),
          )
          for (const f of filled) {
            for (const w of waiting.filter((x) => x.id < f.id && waitingBefore.some((b) => b.id === x.id))) {
              expect(w.qty).toBeGreaterThan(f.qty)
            }
          }
        }
      }),
      { numRuns: 300 },
    )
  })

  it('fills waiting lines oldest first, passing over those that fit no batch, whatever the stock that arrives', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 1, maxLength: 3 }),
        async (waitingQtys, arrivingQtys) => {
          const app = bootstrapTestApp()
          await app.bus.handle({ type: 'CreateBatch', ref: 'empty', sku: SKU, qty: 1, eta: null })
          await app.bus.handle({ type: 'Allocate', orderid: 'first', sku: SKU, qty: 1 })
          for (const [i, qty] of waitingQtys.entries()) {
            await app.bus.handle({ type: 'Allocate', orderid: `w${i}`, sku: SKU, qty, backorder: true })
          }
          const expected = new Map<string, string>()
          const available = arrivingQtys.map((qty) => qty)
          for (const [i, qty] of arrivingQtys.entries()) {
            await app.bus.handle({ type: 'CreateBatch', ref: `b${i}`, sku: SKU, qty, eta: '2027-01-01' })
            // The reference: each arrival fills the queue in order, each line from the first batch that fits.
            for (const [j, want] of waitingQtys.entries()) {
              if (expected.has(`w${j}`)) continue
              const batch = available.findIndex((left, k) => k <= i && left >= want)
              if (batch === -1) continue
              available[batch] = (available[batch] ?? 0) - want
              expected.set(`w${j}`, `b${batch}`)
            }
          }
          const served = app.storage.allocations.filter((a) => a.orderid !== 'first' && a.status === 'allocated')
          expect(new Map(served.map((a) => [a.orderid, a.batchref]))).toEqual(expected)
        },
      ),
      { numRuns: 200 },
    )
  })
})
