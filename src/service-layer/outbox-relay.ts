import type { MessageBus } from './message-bus.ts'
import { type PeriodicSweep, periodicSweep } from './periodic-sweep.ts'
import type { Logger, Outbox } from './ports.ts'

/** `sweep` delivers every event that is due now and returns how many it handed to the bus. */
export type OutboxRelay = PeriodicSweep

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

  async function sweep(stopped: () => boolean): Promise<number> {
    let handed = 0
    for (;;) {
      const due = await outbox.claimDue(batchSize)
      for (const stored of due) {
        const delivered = await bus.deliver(stored)
        // Why is in the log already: the handler's failure, or the outage of what it needed.
        if (!delivered) logger.debug({ eventId: stored.id }, 'event delivery failed; it will be retried with backoff')
      }
      handed += due.length
      if (due.length < batchSize || stopped()) return handed
    }
  }

  return periodicSweep(sweep, { intervalMs, logger, what: 'outbox sweep' })
}
