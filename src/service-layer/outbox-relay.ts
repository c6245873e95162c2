import type { MessageBus } from './message-bus.ts'
import type { Logger, Outbox } from './ports.ts'

export interface OutboxRelay {
  /** Delivers every event that is due now; returns how many it handed to the bus. */
  sweep(): Promise<number>
  /** Sweeps now and then every `intervalMs` until `stop`. */
  start(): void
  stop(): Promise<void>
}

/**
 * Finishes the deliveries that did not finish in line: the process died after a commit, or a handler
 * failed. Each event is leased before it is handled, so several processes can run a relay.
 */
export function createOutboxRelay(
  deps: Readonly<{ bus: MessageBus; outbox: Outbox; logger: Logger; intervalMs?: number; batchSize?: number }>,
): OutboxRelay {
  const { bus, outbox, logger } = deps
  const intervalMs = deps.intervalMs ?? 1000
  const batchSize = deps.batchSize ?? 100
  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> = Promise.resolve()
  let stopped = false

  async function sweep(): Promise<number> {
    let handed = 0
    for (;;) {
      const due = await outbox.claimDue(batchSize)
      for (const stored of due) {
        const delivered = await bus.deliver(stored)
        if (!delivered) logger.warn({ eventId: stored.id }, 'event delivery failed; it will be retried with backoff')
      }
      handed += due.length
      if (due.length < batchSize || stopped) return handed
    }
  }

  function tick(): void {
    running = sweep()
      .catch((error: unknown) => logger.error({ err: error }, 'outbox sweep failed'))
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
