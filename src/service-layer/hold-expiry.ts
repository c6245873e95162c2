import type { MessageBus } from './message-bus.ts'
import type { OutboxRelay } from './outbox-relay.ts'
import type { Clock, ExpiredHolds, Logger } from './ports.ts'

/**
 * Releases holds past their expiry, each through the bus, so that the product decides again (a hold
 * confirmed or extended meanwhile stays) and its version guard makes a release happen once even when
 * several processes sweep. The first sweep runs at start: holds that expired while the service was
 * down are released then.
 */
export function createHoldExpiry(
  deps: Readonly<{
    bus: MessageBus
    expiredHolds: ExpiredHolds
    clock: Clock
    logger: Logger
    intervalMs?: number
    batchSize?: number
  }>,
): OutboxRelay {
  const { bus, expiredHolds, clock, logger } = deps
  const intervalMs = deps.intervalMs ?? 500
  const batchSize = deps.batchSize ?? 100
  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> = Promise.resolve()
  let stopped = false

  async function sweep(): Promise<number> {
    let released = 0
    for (;;) {
      const due = await expiredHolds.due(clock.now(), batchSize)
      let failed = 0
      for (const { orderid, sku } of due) {
        try {
          const result = await bus.handle({ type: 'ReleaseExpiredHold', orderid, sku })
          if (result.released) released += 1
        } catch (error) {
          // One hold that cannot be released now must not hold up the others; the next sweep tries again.
          failed += 1
          logger.error({ err: error, orderid, sku }, 'releasing an expired hold failed; will retry')
        }
      }
      if (due.length < batchSize || stopped || failed > 0) return released
    }
  }

  function tick(): void {
    running = sweep()
      .catch((error: unknown) => logger.error({ err: error }, 'releasing expired holds failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs)
      })
  }

  return {
    sweep,
    start() {
      stopped = false
      tick()
    },
    async stop() {
      stopped = true
      clearTimeout(timer)
      await running
    },
  }
}

/** Runs the given relays as one: started, swept and stopped together. */
export function together(...relays: OutboxRelay[]): OutboxRelay {
  return {
    async sweep() {
      let handed = 0
      for (const relay of relays) handed += await relay.sweep()
      return handed
    },
    start() {
      for (const relay of relays) relay.start()
    },
    async stop() {
      await Promise.all(relays.map((relay) => relay.stop()))
    },
  }
}
