import { afterAll, describe, expect, it } from 'vitest'
import { PrometheusMetrics } from '../../src/adapters/prometheus-metrics.ts'
import type { Service } from '../../src/bootstrap.ts'
import { buildApp } from '../../src/entrypoints/http/app.ts'
import type { MessageBus } from '../../src/service-layer/message-bus.ts'
import { ConcurrencyConflict, type Logger } from '../../src/service-layer/ports.ts'

// Failures a running service cannot be made to produce on demand, checked in-process through `inject`.
describe('the HTTP error handler', () => {
  const logged: Array<{ obj: object; msg?: string }> = []
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: () => {},
    error: (obj, msg) => logged.push({ obj, msg }),
  }
  let failure: unknown
  const service: Service = {
    // The routes under test reach only `handle`.
    bus: {
      handle: async () => {
        throw failure
      },
    } as Partial<MessageBus> as MessageBus,
    views: {
      allocations: async () => [],
      order: async () => [],
      batch: async () => undefined,
      product: async () => undefined,
      products: async () => [],
      lines: async () => undefined,
      events: async () => [],
      lastEventId: async () => 0,
      prunedThrough: async () => 0,
    },
    feed: { subscribe: async () => () => {}, size: 0, close: () => {} },
    availability: async () => undefined,
    batchMoves: async () => undefined,
    logger,
    relay: { sweep: async () => 0, start: () => {}, stop: async () => {} },
    database: null,
    metrics: new PrometheusMetrics(null, logger),
    readiness: async () => ({ ready: true, checks: { database: 'ok', redis: 'off' } }),
    migrate: async () => {},
    close: async () => {},
  }
  const app = buildApp(service)
  afterAll(() => app.close())

  const allocate = () =>
    app.inject({ method: 'POST', url: '/allocations', payload: { orderid: 'order-1', sku: 'sku-1', qty: 1 } })

  it('answers 500 with a generic message to an unexpected error, and logs it', async () => {
    failure = new Error('connection to the database lost: password=secret')
    const answer = await allocate()
    expect(answer.statusCode).toBe(500)
    expect(answer.json()).toEqual({
      message: 'Something went wrong on our side; it has been logged',
      code: 'internal',
    })
    expect(answer.body).not.toContain('secret')
    expect(logged).toContainEqual({
      obj: expect.objectContaining({ err: failure, url: '/allocations', reqId: expect.any(String) }),
      msg: 'request failed',
    })
  })

  it('answers 503 when a write keeps losing races', async () => {
    failure = new ConcurrencyConflict('version changed')
    const answer = await allocate()
    expect(answer.statusCode).toBe(503)
    expect(answer.json().code).toBe('busy')
  })
})
