import type { ExpiredHoldsOf } from '../domain/commands.ts'
import type { MessageBus } from './message-bus.ts'
import { type PeriodicSweep, periodicSweep } from './periodic-sweep.ts'
import type { Clock, ExpiredHolds, Logger } from './ports.ts'

/**
 * Releases holds past their expiry through the bus, the holds of several skus in one unit of work (one
 * read and one commit for all of them), so that each product decides again (a hold confirmed or extended
 * meanwhile stays) and its version guard makes a release happen once even when several processes sweep.
 * A few such groups are released at a time. The first sweep runs at start: holds that expired while the
 * service was down are released then.
 */
export function createHoldExpiry(
  deps: Readonly<{
    bus: MessageBus
    expiredHolds: ExpiredHolds
    clock: Clock
    logger: Logger
    intervalMs?: number
    batchSize?: number
    /** Skus released in one unit of work. */
    skusPerRelease?: number
    /** Units of work at the same time. */
    concurrency?: number
  }>,
): PeriodicSweep {
  const { bus, expiredHolds, clock, logger } = deps
  const intervalMs = deps.intervalMs ?? 500
  const batchSize = deps.batchSize ?? 500
  const skusPerRelease = deps.skusPerRelease ?? 25
  const concurrency = deps.concurrency ?? 4
  /** Returns how many were released and how many could not be. */
  async function release(holds: readonly ExpiredHoldsOf[]): Promise<[number, number]> {
    try {
      const { released } = await bus.handle({ type: 'ReleaseExpiredHolds', holds })
      return [released, 0]
    } catch (error) {
      // One hold that cannot be released now must not hold up the others: each sku goes on its own,
      // then each hold of a sku that still fails.
      const [first] = holds
      if (holds.length > 1) return releaseEach(holds.map((hold) => [hold]))
      if (first && first.orderids.length > 1) {
        return releaseEach(first.orderids.map((orderid) => [{ sku: first.sku, orderids: [orderid] }]))
      }
      logger.error(
        { err: error, orderid: first?.orderids[0], sku: first?.sku },
        'releasing an expired hold failed; will retry',
      )
      return [0, 1]
    }
  }

  async function releaseEach(parts: ReadonlyArray<readonly ExpiredHoldsOf[]>): Promise<[number, number]> {
    let [released, failed] = [0, 0]
    for (const part of parts) {
      const [r, f] = await release(part)
      released += r
      failed += f
    }
    return [released, failed]
  }

  async function sweep(stopped: () => boolean): Promise<number> {
    let released = 0
    for (;;) {
      const due = await expiredHolds.due(clock.now(), batchSize)
      const bySku = Map.groupBy(due, (hold) => hold.sku)
      const holds = [...bySku].map(([sku, of]) => ({ sku, orderids: of.map((hold) => hold.orderid) }))
      const groups = Array.from({ length: Math.ceil(holds.length / skusPerRelease) }, (_, i) =>
        holds.slice(i * skusPerRelease, (i + 1) * skusPerRelease),
      )
      let failed = 0
      const worker = async () => {
        for (let group = groups.shift(); group; group = groups.shift()) {
          const [r, f] = await release(group)
          released += r
          failed += f
        }
      }
      await Promise.all(Array.from({ length: concurrency }, worker))
      // The next sweep tries the failed ones again; going on now would only find them again.
      if (due.length < batchSize || stopped() || failed > 0) return released
    }
  }

  return periodicSweep(sweep, { intervalMs, logger, what: 'releasing expired holds' })
}
