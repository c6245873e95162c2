import { OutageLog } from './outage-log.ts'
import type { Logger } from './ports.ts'

/** Work done in sweeps: now, and then every `intervalMs` until `stop`. */
export interface PeriodicSweep {
  /** Sweeps once now; returns how much it handled. */
  sweep(): Promise<number>
  /** Sweeps now and then every `intervalMs` until `stop`. */
  start(): void
  /** Waits for the sweep in hand; no other starts after it. */
  stop(): Promise<void>
}

/**
 * Runs `sweep` now and then, one sweep at a time: the next is scheduled when one ends, so a slow sweep
 * never overlaps the next. `sweep` is told through `stopped` when to end early. While sweeps fail (the
 * database is down), the log says so once, reminds at most once a minute, and says when they work again.
 */
export function periodicSweep(
  sweep: (stopped: () => boolean) => Promise<number>,
  options: Readonly<{ intervalMs: number; logger: Logger; what: string; now?: () => number }>,
): PeriodicSweep {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> = Promise.resolve()
  let stopped = false
  const isStopped = () => stopped
  const outage = new OutageLog(options.logger, options.what, options.now)

  function tick(): void {
    running = sweep(isStopped)
      .then(
        () => outage.succeeded(),
        (error: unknown) => outage.failed(error),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, options.intervalMs)
      })
  }

  return {
    sweep: () => sweep(isStopped),
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
export function together(...relays: PeriodicSweep[]): PeriodicSweep {
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
