import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Command } from '../../src/domain/commands.ts'
import { Product } from '../../src/domain/model.ts'
import { bootstrapTestApp, type TestApp } from './fakes.ts'

async function appWith(sku: string, batches: Array<[ref: string, qty: number, eta: string | null]>): Promise<TestApp> {
  const app = bootstrapTestApp()
  for (const [ref, qty, eta] of batches) await app.bus.handle({ type: 'CreateBatch', ref, sku, qty, eta })
  return app
}

describe('availability', () => {
  it('promises warehouse stock before any shipment, so the line ships now', async () => {
    const app = await appWith('CLOCK', [
      ['shipment', 100, '2026-12-01'],
      ['warehouse', 100, null],
    ])
    expect(await app.availability('CLOCK', 10)).toEqual({
      sku: 'CLOCK',
      qty: 10,
      promise: { batchref: 'warehouse', eta: null },
      batches: [
        { ref: 'warehouse', eta: null, available: 100, fits: true },
        { ref: 'shipment', eta: '2026-12-01', available: 100, fits: true },
      ],
    })
  })

  it('promises the earliest shipment that fits when the warehouse cannot take the line', async () => {
    const app = await appWith('SPOON', [
      ['warehouse', 5, null],
      ['slow', 100, '2027-02-01'],
      ['medium', 100, '2027-01-10'],
      ['fast', 3, '2026-12-24'],
    ])
    const answer = await app.availability('SPOON', 10)
    expect(answer?.promise).toEqual({ batchref: 'medium', eta: '2027-01-10' })
    expect(answer?.batches.map((b) => [b.ref, b.fits])).toEqual([
      ['warehouse', false],
      ['fast', false],
      ['medium', true],
      ['slow', true],
    ])
  })

  it('breaks an eta tie by the batch created first', async () => {
    const app = await appWith('LAMP', [
      ['first', 10, '2027-01-10'],
      ['second', 10, '2027-01-10'],
    ])
    expect((await app.availability('LAMP', 10))?.promise).toEqual({ batchref: 'first', eta: '2027-01-10' })
  })

  it('promises nothing when no batch can take the qty, and says why batch by batch', async () => {
    const app = await appWith('VASE', [
      ['warehouse', 4, null],
      ['shipment', 6, '2027-01-10'],
    ])
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'VASE', qty: 3 })
    await app.bus.handle({ type: 'Allocate', orderid: 'o2', sku: 'VASE', qty: 3 })
    expect(await app.availability('VASE', 5)).toEqual({
      sku: 'VASE',
      qty: 5,
      promise: null,
      batches: [
        { ref: 'warehouse', eta: null, available: 1, fits: false },
        { ref: 'shipment', eta: '2027-01-10', available: 3, fits: false },
      ],
    })
  })

  it('is undefined for an unknown sku', async () => {
    const app = bootstrapTestApp()
    expect(await app.availability('NO-SUCH-SKU', 1)).toBeUndefined()
  })

  it('writes nothing and raises no event', async () => {
    const app = await appWith('RUG', [['b1', 10, null]])
    const { commits } = app.storage
    const events = app.events().length
    await app.availability('RUG', 1)
    await app.availability('RUG', 11)
    expect(app.storage.commits).toBe(commits)
    expect(app.events()).toHaveLength(events)
  })
})

describe('changeBatchEta', () => {
  it('makes an arrived shipment preferred: the promise and the next allocation take it', async () => {
    const app = await appWith('SOFA', [
      ['early-ship', 10, '2027-01-05'],
      ['late-ship', 10, '2027-02-01'],
    ])
    await app.bus.handle({ type: 'ChangeBatchEta', ref: 'late-ship', eta: null })
    expect((await app.availability('SOFA', 2))?.promise).toEqual({ batchref: 'late-ship', eta: null })
    expect((await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'SOFA', qty: 2 })).batchref).toBe('late-ship')
  })

  it('pushes a delayed shipment behind the ones now due earlier', async () => {
    const app = await appWith('DESK', [
      ['ship-a', 10, '2027-01-05'],
      ['ship-b', 10, '2027-01-20'],
    ])
    await app.bus.handle({ type: 'ChangeBatchEta', ref: 'ship-a', eta: '2027-03-01' })
    expect((await app.availability('DESK', 2))?.batches.map((b) => [b.ref, b.eta])).toEqual([
      ['ship-b', '2027-01-20'],
      ['ship-a', '2027-03-01'],
    ])
    expect((await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'DESK', qty: 2 })).batchref).toBe('ship-b')
  })

  it('leaves the lines already allocated on their batch', async () => {
    const app = await appWith('STOOL', [
      ['ship-a', 10, '2027-01-05'],
      ['ship-b', 10, '2027-01-20'],
    ])
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'STOOL', qty: 4 })
    await app.bus.handle({ type: 'ChangeBatchEta', ref: 'ship-a', eta: '2027-03-01' })
    expect(app.storage.allocations.map((a) => [a.orderid, a.batchref])).toEqual([['o1', 'ship-a']])
    expect(app.storage.batches.get('ship-a')).toMatchObject({ eta: '2027-03-01', purchased: 10, allocated: 4 })
  })

  it('raises BatchEtaChanged with the batch, its sku and the new eta, and publishes it', async () => {
    const app = await appWith('CHAIR', [['ship-a', 10, '2027-01-05']])
    await app.bus.handle({ type: 'ChangeBatchEta', ref: 'ship-a', eta: null })
    const changed = { type: 'BatchEtaChanged', ref: 'ship-a', sku: 'CHAIR', eta: null }
    expect(app.events().at(-1)).toEqual(changed)
    expect(app.publisher.published.at(-1)?.event).toEqual(changed)
  })

  it('changes nothing when the eta is already the one given', async () => {
    const app = await appWith('CHAIR', [['ship-a', 10, '2027-01-05']])
    const events = app.events().length
    await app.bus.handle({ type: 'ChangeBatchEta', ref: 'ship-a', eta: '2027-01-05' })
    expect(app.events()).toHaveLength(events)
  })

  it('refuses an unknown batch and writes nothing', async () => {
    const app = await appWith('CHAIR', [['ship-a', 10, '2027-01-05']])
    const { commits } = app.storage
    await expect(app.bus.handle({ type: 'ChangeBatchEta', ref: 'no-such-batch', eta: null })).rejects.toThrow(
      'There is no batch no-such-batch',
    )
    expect(app.storage.commits).toBe(commits)
  })
})

describe('changeBatch', () => {
  it('changes the qty and the eta of a batch in one transaction', async () => {
    const app = await appWith('TABLE', [['ship-a', 10, '2027-01-05']])
    const { commits } = app.storage
    await app.bus.handle({ type: 'ChangeBatch', ref: 'ship-a', qty: 20, eta: { to: null } })
    expect(app.storage.commits).toBe(commits + 1)
    expect(app.storage.batches.get('ship-a')).toMatchObject({ eta: null, purchased: 20 })
    expect(app.events().slice(-2)).toEqual([
      { type: 'BatchEtaChanged', ref: 'ship-a', sku: 'TABLE', eta: null },
      { type: 'BatchQuantityChanged', ref: 'ship-a', sku: 'TABLE', qty: 20 },
    ])
  })

  it('moves the lines a shrunk batch can no longer hold, as a qty change alone does', async () => {
    const app = await appWith('BENCH', [
      ['ship-a', 10, '2027-01-05'],
      ['ship-b', 10, '2027-02-01'],
    ])
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'BENCH', qty: 4 })
    await app.bus.handle({ type: 'Allocate', orderid: 'o2', sku: 'BENCH', qty: 4 })
    const result = await app.bus.handle({ type: 'ChangeBatch', ref: 'ship-a', qty: 5, eta: { to: '2027-01-06' } })
    expect(result.deallocated.map((l) => l.orderid)).toEqual(['o2'])
    const where = Object.fromEntries(app.storage.allocations.map((a) => [a.orderid, a.batchref]))
    expect(where).toEqual({ o1: 'ship-a', o2: 'ship-b' })
    expect(app.storage.batches.get('ship-a')).toMatchObject({ eta: '2027-01-06', purchased: 5, allocated: 4 })
  })
})

describe('changeBatch with waiting lines', () => {
  it('fills the backorders a raised qty can serve, on the batch with its new eta', async () => {
    const app = await appWith('LAMP', [['ship-a', 2, '2027-01-05']])
    await app.bus.handle({ type: 'Allocate', orderid: 'waiting', sku: 'LAMP', qty: 5, backorder: true })
    await app.bus.handle({ type: 'ChangeBatch', ref: 'ship-a', qty: 10, eta: { to: null } })
    expect(app.storage.allocations.map((a) => [a.orderid, a.status, a.batchref])).toEqual([
      ['waiting', 'allocated', 'ship-a'],
    ])
    expect(app.storage.batches.get('ship-a')).toMatchObject({ eta: null, purchased: 10, allocated: 5 })
  })

  it('leaves waiting lines waiting when only the eta changes: no stock was gained', async () => {
    const app = await appWith('LAMP', [['ship-a', 2, '2027-01-05']])
    await app.bus.handle({ type: 'Allocate', orderid: 'waiting', sku: 'LAMP', qty: 5, backorder: true })
    await app.bus.handle({ type: 'ChangeBatchEta', ref: 'ship-a', eta: null })
    expect(app.storage.allocations.map((a) => [a.orderid, a.status])).toEqual([['waiting', 'backordered']])
  })
})

const etas = [null, '2026-12-01', '2026-12-15', '2027-01-10']
const batchSpecs = fc.array(
  fc.record({ qty: fc.integer({ min: 1, max: 20 }), eta: fc.constantFrom(...etas), taken: fc.nat(20) }),
  { minLength: 1, maxLength: 6 },
)

describe('the promise', () => {
  it('is the batch that the next allocation of the same qty takes, in the domain', () => {
    fc.assert(
      fc.property(batchSpecs, fc.integer({ min: 1, max: 22 }), (specs, qty) => {
        const product = new Product({ sku: 'X' })
        for (const [i, spec] of specs.entries()) {
          product.addBatch(`b${i}`, spec.qty, spec.eta)
          product.allocate({ orderid: `taken-${i}`, sku: 'X', qty: Math.min(spec.taken, spec.qty) || 1 })
        }
        const promised = product.preferredBatch(qty)?.ref ?? null
        const before = new Map(product.batches.map((b) => [b.ref, b.allocatedQuantity]))
        product.allocate({ orderid: 'next', sku: 'X', qty })
        const taken = product.batches.find((b) => b.allocatedQuantity !== before.get(b.ref))?.ref ?? null
        expect(taken).toBe(promised)
      }),
    )
  })

  it('is the batch that the next allocation takes after any history of allocations and eta changes', async () => {
    const refs = ['r1', 'r2', 'r3', 'r4']
    const step: fc.Arbitrary<Command> = fc.oneof(
      fc.record({
        type: fc.constant('CreateBatch' as const),
        ref: fc.constantFrom(...refs),
        sku: fc.constant('X'),
        qty: fc.integer({ min: 1, max: 20 }),
        eta: fc.constantFrom(...etas),
      }),
      fc.record({
        type: fc.constant('Allocate' as const),
        orderid: fc.constantFrom('o1', 'o2', 'o3', 'o4', 'o5'),
        sku: fc.constant('X'),
        qty: fc.integer({ min: 1, max: 8 }),
      }),
      fc.record({
        type: fc.constant('ChangeBatchEta' as const),
        ref: fc.constantFrom(...refs),
        eta: fc.constantFrom(...etas),
      }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 20 }), fc.integer({ min: 1, max: 22 }), async (steps, qty) => {
        const app = bootstrapTestApp()
        await app.bus.handle({ type: 'CreateBatch', ref: 'r0', sku: 'X', qty: 5, eta: '2026-12-15' })
        for (const s of steps) await app.bus.handle(s).catch(() => {})
        const promise = (await app.availability('X', qty))?.promise ?? null
        const { batchref } = await app.bus.handle({ type: 'Allocate', orderid: 'next', sku: 'X', qty })
        expect(promise?.batchref ?? null).toBe(batchref)
        expect(promise?.eta ?? null).toBe(batchref === null ? null : (app.storage.batches.get(batchref)?.eta ?? null))
      }),
      { numRuns: 100 },
    )
  })
})
