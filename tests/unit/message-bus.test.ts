import { describe, expect, it } from 'vitest'
import type { DomainEvent } from '../../src/domain/events.ts'
import { FailFast } from '../../src/service-layer/fail-fast.ts'
import { commandHandlers, eventHandlers } from '../../src/service-layer/handlers.ts'
import { createMessageBus } from '../../src/service-layer/message-bus.ts'
import {
  bootstrapTestApp,
  FakeLogger,
  FakeNotifications,
  FakeOutbox,
  FakePublisher,
  FakeStorage,
  FakeUnitOfWork,
} from './fakes.ts'

describe('message bus', () => {
  it('handles every event of concurrent calls exactly once', async () => {
    const app = bootstrapTestApp()
    const skus = ['A', 'B', 'C']
    for (const sku of skus)
      await app.bus.handle({ type: 'CreateBatch', ref: `batch-${sku}`, sku, qty: 1000, eta: null })
    app.publisher.published.length = 0

    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        app.bus.handle({ type: 'Allocate', orderid: `order-${i}`, sku: skus[i % 3] as string, qty: 1 }),
      ),
    )

    const allocated = app.storage.outbox.filter((e) => e.event.type === 'Allocated')
    expect(allocated).toHaveLength(60)
    expect(app.publisher.published.map((e) => e.id).sort()).toEqual(allocated.map((e) => e.id).sort())
    expect(app.storage.batches.get('batch-A')?.allocated).toBe(20)
  })

  it('retries a command that lost a race for its product, so callers never see the conflict', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'HOT', qty: 10, eta: null })
    const results = await Promise.all(
      Array.from({ length: 15 }, (_, i) => app.bus.handle({ type: 'Allocate', orderid: `o${i}`, sku: 'HOT', qty: 1 })),
    )
    expect(results.filter((r) => r.batchref === 'b1')).toHaveLength(10)
    expect(results.filter((r) => r.batchref === null)).toHaveLength(5)
    expect(app.storage.batches.get('b1')?.allocated).toBe(10)
    // Each line's outcome is counted for monitoring.
    const metrics = await app.metrics.exposition()
    expect(metrics).toMatch(/^allocation_lines_total\{outcome="allocated"\} 10$/m)
    expect(metrics).toMatch(/^allocation_lines_total\{outcome="out_of_stock"\} 5$/m)
  })

  it('counts the races it lost and retried, for monitoring', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'HOT', qty: 10, eta: null })
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: 'HOT', qty: 10, eta: null })
    // Changes of two batches of one product are not grouped: all but one lose the race and are retried.
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        app.bus.handle({ type: 'ChangeBatchQuantity', ref: i % 2 ? 'b1' : 'b2', qty: 20 + i }),
      ),
    )
    const retried = Number(/^allocation_write_conflicts_total (\d+)$/m.exec(await app.metrics.exposition())?.[1])
    expect(retried).toBeGreaterThan(0)
  })

  it('writes concurrent allocations of one sku together, each caller getting its own answer', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'HOT', qty: 10, eta: null })
    await app.bus.handle({ type: 'Allocate', orderid: 'early', sku: 'HOT', qty: 2 })
    const commitsBefore = app.storage.commits
    const results = await Promise.allSettled([
      app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'HOT', qty: 3 }),
      app.bus.handle({ type: 'Allocate', orderid: 'o2', sku: 'HOT', qty: 3 }),
      app.bus.handle({ type: 'Allocate', orderid: 'early', sku: 'HOT', qty: 5 }),
      app.bus.handle({ type: 'Allocate', orderid: 'o3', sku: 'HOT', qty: 3 }),
      app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'HOT', qty: 3 }),
    ])
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.batchref : r.reason.name))).toEqual([
      'b1',
      'b1',
      'LineConflict',
      null,
      'b1',
    ])
    expect(app.storage.commits - commitsBefore).toBeLessThan(5)
    expect(app.storage.batches.get('b1')?.allocated).toBe(8)
  })

  it('logs a failing event handler, does not fail the caller, and leaves the event undelivered', async () => {
    const storage = new FakeStorage()
    const logger = new FakeLogger()
    const outbox = new FakeOutbox(storage)
    const failing = async () => {
      throw new Error('mail server down')
    }
    const bus = createMessageBus(
      {
        startUnitOfWork: async () => new FakeUnitOfWork(storage),
        outbox,
        notifications: new FakeNotifications(),
        publisher: new FakePublisher(),
        logger,
      },
      { commands: commandHandlers, events: { ...eventHandlers, OutOfStock: [failing] } },
    )
    await bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 1, eta: null })
    await expect(bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 5 })).resolves.toMatchObject({
      status: 'out_of_stock',
      batchref: null,
    })
    expect(logger.errors).toHaveLength(1)
    const pending = await outbox.claimDue(10)
    expect(pending.map((e) => e.event.type)).toEqual(['OutOfStock'])
  })

  it('leaves the outage of a dependency to its own log lines, and logs a handler that fails on its own at error', async () => {
    const storage = new FakeStorage()
    const logger = new FakeLogger()
    const redis = new FailFast('Publishing to Redis', 5000, { logger })
    const mailStockTeam = async () => {
      throw new TypeError('a bug')
    }
    const bus = createMessageBus(
      {
        startUnitOfWork: async () => new FakeUnitOfWork(storage),
        outbox: new FakeOutbox(storage),
        notifications: new FakeNotifications(),
        publisher: {
          publish: () =>
            redis.run(async () => {
              throw new Error('Command timed out')
            }),
        },
        logger,
      },
      {
        commands: commandHandlers,
        events: {
          ...eventHandlers,
          OutOfStock: [mailStockTeam],
        },
      },
    )
    await bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 1, eta: null })
    for (const orderid of ['o1', 'o2']) await bus.handle({ type: 'Allocate', orderid, sku: 'LAMP', qty: 1 })

    expect(logger.errors.map((line) => line.msg)).toEqual([
      'Publishing to Redis failed',
      'event handler failed; will retry',
    ])
    expect(logger.errors[1]?.obj).toMatchObject({ err: new TypeError('a bug'), handler: 'mailStockTeam' })
    // The event that met the failure and the one refused at once after it are each a debug line.
    const refused = logger.lines.filter(
      (line) => line.level === 'debug' && line.msg === 'event handler failed; will retry',
    )
    expect(refused.map((line) => (line.obj as { event: DomainEvent }).event.type)).toEqual([
      'BatchCreated',
      'Allocated',
    ])
  })

  it('runs again only the handlers that failed, so a retry does not mail or publish twice', async () => {
    const storage = new FakeStorage()
    const outbox = new FakeOutbox(storage)
    const calls = { mailed: 0, published: 0 }
    const mail = async () => {
      calls.mailed++
    }
    const publish = async () => {
      calls.published++
      if (calls.published === 1) throw new Error('Redis down')
    }
    const bus = createMessageBus(
      {
        startUnitOfWork: async () => new FakeUnitOfWork(storage),
        outbox,
        notifications: new FakeNotifications(),
        publisher: new FakePublisher(),
        logger: new FakeLogger(),
      },
      { commands: commandHandlers, events: { ...eventHandlers, OutOfStock: [mail, publish] } },
    )
    await bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'LAMP', qty: 1, eta: null })
    await bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'LAMP', qty: 5 })
    expect(calls).toEqual({ mailed: 1, published: 1 })
    const [pending] = await outbox.claimDue(10)
    if (!pending) throw new Error('the OutOfStock event is not pending')
    expect(await bus.deliver(pending)).toBe(true)
    expect(calls).toEqual({ mailed: 1, published: 2 })
    expect(storage.delivered.has(pending.id)).toBe(true)
  })

  it('delivers a pending event again through deliver(), as the outbox sweep does', async () => {
    const app = bootstrapTestApp()
    await app.bus.handle({ type: 'CreateBatch', ref: 'b1', sku: 'SOFA', qty: 10, eta: null })
    await app.bus.handle({ type: 'CreateBatch', ref: 'b2', sku: 'SOFA', qty: 10, eta: '2026-12-01' })
    await app.bus.handle({ type: 'Allocate', orderid: 'o1', sku: 'SOFA', qty: 5 })
    const deallocated: DomainEvent = {
      type: 'Deallocated',
      orderid: 'o1',
      sku: 'SOFA',
      qty: 5,
      batchref: 'b1',
      reason: 'batch-shrunk',
    }
    // Delivery only publishes: a shrink moves its lines in its own transaction.
    expect(await app.bus.deliver({ id: 999, event: deallocated })).toBe(true)
    expect(app.storage.allocations.map((a) => [a.orderid, a.batchref])).toEqual([['o1', 'b1']])
    expect(app.storage.delivered.has(999)).toBe(true)
  })
})
