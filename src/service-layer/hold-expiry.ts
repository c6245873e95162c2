import type { MessageBus } from './message-bus.ts'
import { type PeriodicSweep, periodicSweep } from './periodic-sweep.ts'
import type { Clock, ExpiredHolds, Logger } from './ports.ts'

/**
 * Releases holds past their expiry through the bus, the holds of one sku together (one read and one
 * write for all of them), so that the product decides again (a hold confirmed or extended meanwhile
 * stays) and its version guard makes a release happen once even when several processes sweep. A few
 * skus are released at a time. The first sweep runs at start: holds that expired while the service
 * was down are released then.
 */
export function createHoldExpiry(
  deps: Readonly<{
    bus: MessageBus
    expiredHolds: ExpiredHolds
    clock: Clock
    logger: Logger
    intervalMs?: number
    batchSize?: number
    /** Skus released at the same time. */
    concurrency?: number
  }>,
): PeriodicSweep {
  const { bus, expiredHolds, clock, logger } = deps
  const intervalMs = deps.intervalMs ?? 500
  const batchSize = deps.batchSize ?? 500
  const concurrency = deps.concurrency ?? 4
  /** Returns how many were released and how many could not be. */
  async function release(sku: string, orderids: readonly string[]): Promise<[number, number]> {
    try {
      const { released } = await bus.handle({ type: 'ReleaseExpiredHolds', sku, orderids })
      return [released, 0]
    } catch (error) {
      if (orderids.length > 1) {
        // One hold that cannot be released now must not hold up the others: each goes on its own.
        let [released, failed] = [0, 0]
        for (const orderid of orderids) {
          const [r, f] = await release(sku, [orderid])
          released += r
          failed += f
        }
        return [released, failed]
      }
      logger.error({ err: error, orderid: orderids[0], sku }, 'releasing an expired hold failed; will retry')
      return [0, 1]
    }
  }

  async function sweep(stopped: () => boolean): Promise<number> {
    let released = 0
    for (;;) {
      const due = await expiredHolds.due(clock.now(), batchSize)
      const bySku = new Map<string, string[]>()
      for (const { orderid, sku } of due) bySku.set(sku, [...(bySku.get(sku) ?? []), orderid])
      const groups = [...bySku]
      let failed = 0
      const worker = async () => {
        for (let group = groups.shift(); group; group = groups.shift()) {
          const [r, f] = await release(...group)
          released += r
          failed += f
        }
      }
      await Promise.all(Array.from({ length: concurrency }, worker))
      // The next sweep tries the failed ones again; going on now would only find them again.
      if (due.length < batchSize || stopped() || failed > 0) return released
    }
  }

  return periodicSweep(sweep, { intervalMs, logger, failure: 'releasing expired holds failed' })
}
