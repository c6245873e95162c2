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
 * never overlaps the next. `sweep` is told through `stopped` when to end early.
 */
export function periodicSweep(
  sweep: (stopped: () => boolean) => Promise<number>,
  options: Readonly<{ intervalMs: number; logger: Logger; failure: string }>,
): PeriodicSweep {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> = Promise.resolve()
  let stopped = false
  const isStopped = () => stopped

  function tick(): void {
    running = sweep(isStopped)
      .catch((error: unknown) => options.logger.error({ err: error }, options.failure))
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
