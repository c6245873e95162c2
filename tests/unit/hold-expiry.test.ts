import { describe, expect, it } from 'vitest'
import type { ReleaseExpiredHolds } from '../../src/domain/commands.ts'
import { commandHandlers, eventHandlers, type HandlerDeps } from '../../src/service-layer/handlers.ts'
import { createHoldExpiry } from '../../src/service-layer/hold-expiry.ts'
import { createMessageBus } from '../../src/service-layer/message-bus.ts'
import {
  FakeClock,
  FakeExpiredHolds,
  FakeLogger,
  FakeNotifications,
  FakeOutbox,
  FakePublisher,
  FakeStorage,
  FakeUnitOfWork,
} from './fakes.ts'

/**
 * A bus over fake storage whose release of expired holds fails, like a database hiccup, for the commands
 * `fails` picks while `hiccup.on`; and the hold sweep on it.
 */
function sweeping({
  fails = () => false,
  skusPerRelease,
}: {
  fails?: (command: ReleaseExpiredHolds) => boolean
  skusPerRelease?: number
} = {}) {
  const storage = new FakeStorage()
  const clock = new FakeClock()
  const logger = new FakeLogger()
  const hiccup = { on: true }
  const flaky = async (command: ReleaseExpiredHolds, deps: HandlerDeps) => {
    if (hiccup.on && fails(command)) throw new Error('connection reset')
    return commandHandlers.ReleaseExpiredHolds(command, deps)
  }
  const bus = createMessageBus(
    {
      startUnitOfWork: async () => new FakeUnitOfWork(storage),
      outbox: new FakeOutbox(storage),
      notifications: new FakeNotifications(),
      publisher: new FakePublisher(),
      logger,
      clock,
    },
    { commands: { ...commandHandlers, ReleaseExpiredHolds: flaky }, events: eventHandlers },
  )
  const expiry = createHoldExpiry({ bus, expiredHolds: new FakeExpiredHolds(storage), clock, logger, skusPerRelease })
  return { storage, clock, logger, hiccup, bus, expiry }
}

describe('hold expiry', () => {
  it('goes on releasing the other holds when one fails, and tries that one again at the next sweep', async () => {
    const { storage, clock, logger, hiccup, bus, expiry } = sweeping({
      fails: (command) => command.holds.some((h) => h.orderids.includes('unlucky')),
    })
    await bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 10, eta: null })
    for (const orderid of ['unlucky', 'lucky']) {
      await bus.handle({ type: 'Allocate', orderid, sku: 'LAMP', qty: 2, holdSeconds: 10 })
    }
    clock.advance(10)

    expect(await expiry.sweep()).toBe(1)
    expect(storage.allocations.map((a) => a.orderid)).toEqual(['unlucky'])
    expect(logger.errors.map((e) => e.msg)).toEqual(['releasing an expired hold failed; will retry'])
    hiccup.on = false
    expect(await expiry.sweep()).toBe(1)
    expect(storage.allocations).toEqual([])
    expect(storage.batches.get('b1')?.allocated).toBe(0)
  })

  it.each([
    { skusPerRelease: undefined, units: 1 },
    { skusPerRelease: 1, units: 2 },
  ])(
    'releases the expired holds of several skus together: $units unit(s) of work with skusPerRelease $skusPerRelease, whatever the count of holds',
    async ({ skusPerRelease, units }) => {
      const { storage, clock, bus, expiry } = sweeping({ skusPerRelease })
      for (const sku of ['LAMP', 'SOFA'])
        await bus.handle({ type: 'CreateBatch', ref: `${sku}-1`, sku, qty: 10, eta: null })
      for (let i = 0; i < 5; i++)
        await bus.handle({ type: 'Allocate', orderid: `l${i}`, sku: 'LAMP', qty: 1, holdSeconds: 10 })
      for (let i = 0; i < 2; i++)
        await bus.handle({ type: 'Allocate', orderid: `s${i}`, sku: 'SOFA', qty: 1, holdSeconds: 10 })
      await bus.handle({ type: 'Allocate', orderid: 'l0', sku: 'LAMP', qty: 1 })
      clock.advance(10)
      const commits = storage.commits

      expect(await expiry.sweep()).toBe(6)
      expect(storage.commits - commits).toBe(units)
      expect(storage.allocations.map((a) => [a.orderid, a.status])).toEqual([['l0', 'allocated']])
      expect(storage.batches.get('LAMP-1')?.allocated).toBe(1)
      expect(storage.batches.get('SOFA-1')?.allocated).toBe(0)
    },
  )

  it('releases the other skus when one sku of a group cannot be released, and that one at the next sweep', async () => {
    const { storage, clock, logger, hiccup, bus, expiry } = sweeping({
      fails: (command) => command.holds.some((h) => h.sku === 'SOFA'),
    })
    for (const sku of ['LAMP', 'SOFA', 'DESK']) {
      await bus.handle({ type: 'CreateBatch', ref: `${sku}-1`, sku, qty: 10, eta: null })
      await bus.handle({ type: 'Allocate', orderid: `o-${sku}`, sku, qty: 1, holdSeconds: 10 })
    }
    clock.advance(10)

    expect(await expiry.sweep()).toBe(2)
    expect(storage.allocations.map((a) => a.orderid)).toEqual(['o-SOFA'])
    expect(logger.errors.map((e) => e.msg)).toEqual(['releasing an expired hold failed; will retry'])
    hiccup.on = false
    expect(await expiry.sweep()).toBe(1)
    expect(storage.allocations).toEqual([])
  })
})
