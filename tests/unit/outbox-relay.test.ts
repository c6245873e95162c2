import { describe, expect, it } from 'vitest'
import { commandHandlers, eventHandlers } from '../../src/service-layer/handlers.ts'
import { createMessageBus } from '../../src/service-layer/message-bus.ts'
import { createOutboxRelay } from '../../src/service-layer/outbox-relay.ts'
import { FakeLogger, FakeNotifications, FakeOutbox, FakePublisher, FakeStorage, FakeUnitOfWork } from './fakes.ts'

describe('outbox relay', () => {
  it('finishes a delivery whose handler failed, and then has nothing left to deliver', async () => {
    const storage = new FakeStorage()
    const outbox = new FakeOutbox(storage)
    const notifications = new FakeNotifications()
    let mailServerUp = false
    const flakyNotify = async (...args: Parameters<(typeof eventHandlers.OutOfStock)[number]>) => {
      if (!mailServerUp) throw new Error('mail server down')
      await eventHandlers.OutOfStock[0]?.(...args)
    }
    const logger = new FakeLogger()
    const bus = createMessageBus(
      {
        startUnitOfWork: async () => new FakeUnitOfWork(storage),
        outbox,
        notifications,
        publisher: new FakePublisher(),
        logger,
      },
      { commands: commandHandlers, events: { ...eventHandlers, OutOfStock: [flakyNotify] } },
    )
    const relay = createOutboxRelay({ bus, outbox, logger })
    await bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 1, eta: null })
    await bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 5 })
    expect(notifications.sent).toEqual([])

    mailServerUp = true
    expect(await relay.sweep()).toBe(1)
    expect(notifications.sent.map((n) => n.subject)).toEqual(['Out of stock for LAMP'])
    expect(await relay.sweep()).toBe(0)
  })

  it('loses no line when the process dies between a shrink and the delivery of its events', async () => {
    const storage = new FakeStorage()
    const outbox = new FakeOutbox(storage)
    const deps = {
      startUnitOfWork: async () => new FakeUnitOfWork(storage),
      outbox,
      notifications: new FakeNotifications(),
      publisher: new FakePublisher(),
      logger: new FakeLogger(),
    }
    const bus = createMessageBus(deps)
    await bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'SOFA', qty: 10, eta: null })
    await bus.handle({ type: 'CreateBatch', ref: 'b2', sku: 'SOFA', qty: 10, eta: '2026-12-01' })
    await bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'SOFA', qty: 8 })
    // The process dies between the commit of the shrink and the delivery of its events.
    const uow = new FakeUnitOfWork(storage)
    const product = await uow.products.get('SOFA', { excessOf: { ref: 'b1', qty: 5 } })
    product?.changeBatchQuantity('b1', 5)
    await uow.commit()
    // The line moved in the shrink's own transaction: nothing waits on the delivery.
    expect(storage.allocations.map((a) => [a.orderid, a.batchref])).toEqual([['o1', 'b2']])

    const restarted = createOutboxRelay({ bus: createMessageBus(deps), outbox, logger: deps.logger })
    expect(await restarted.sweep()).toBeGreaterThan(0)
    expect(await restarted.sweep()).toBe(0)
    expect(storage.allocations.map((a) => [a.orderid, a.batchref])).toEqual([['o1', 'b2']])
    expect(storage.outbox.filter((e) => e.event.type === 'Allocated')).toHaveLength(2)
  })
})
