import type { Logger } from './ports.ts'

/** A failure that goes on is mentioned again at most this often. */
const REMINDER_MS = 60_000

/**
 * What the log says of something that fails for a while (a sweep, a server): its first failure at error,
 * then at most a reminder a minute at warn, with the count, and one line when it works again, saying how
 * long it failed. An outage is a few lines, not several a second.
 */
export class OutageLog {
  readonly #logger: Logger
  readonly #what: string
  readonly #now: () => number
  #since: number | null = null
  #failures = 0
  #remindedAt = 0

  /** `what` begins the sentences: `${what} failed`, `${what} works again`. */
  constructor(logger: Logger, what: string, now: () => number = Date.now) {
    this.#logger = logger
    this.#what = what
    this.#now = now
  }

  /** True when this failure begins an outage. */
  failed(error: unknown): boolean {
    const now = this.#now()
    this.#failures++
    if (this.#since === null) {
      this.#since = now
      this.#remindedAt = now
      this.#logger.error({ err: error }, `${this.#what} failed`)
      return true
    }
    if (now - this.#remindedAt >= REMINDER_MS) {
      this.#remindedAt = now
      const failingForMs = now - this.#since
      this.#logger.warn(
        { err: error, failures: this.#failures, failingForMs },
        `${this.#what} still failing: ${this.#failures} failures in ${duration(failingForMs)}`,
      )
    }
    return false
  }

  /** True when this success ends an outage. */
  succeeded(): boolean {
    if (this.#since === null) return false
    const failingForMs = this.#now() - this.#since
    this.#logger.info(
      { failures: this.#failures, failingForMs },
      `${this.#what} works again, after failing for ${duration(failingForMs)} (${this.#failures} failures)`,
    )
    this.#since = null
    this.#failures = 0
    return true
  }
}

/** `4.2 s`, `38 s`, `2 min`, `12 min 5 s`. */
export function duration(ms: number): string {
  const seconds = ms / 1000
  if (seconds < 10) return `${seconds.toFixed(1)} s`
  const whole = Math.round(seconds)
  if (whole < 60) return `${whole} s`
  const [minutes, rest] = [Math.floor(whole / 60), whole % 60]
  return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`
}
