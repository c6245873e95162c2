import { OutageLog } from './outage-log.ts'
import { type Logger, Unavailable } from './ports.ts'

/**
 * What FailFast throws: its dependency failed, just now or a moment ago. The outage is already in the log
 * (FailFast says when it begins and ends), so whoever catches it need not log it again for each event.
 */
export class DependencyDown extends Unavailable {
  override readonly name = 'DependencyDown'
}

export type FailFastOptions = Readonly<{
  logger: Logger
  /** Called on the first success after a failure: what waits for the dependency may go now. */
  onRecovered?: () => void
  now?: () => number
}>

/**
 * For `windowMs` after a failure, refuses at once what would go to a dependency that just failed: a mail
 * server or a Redis that stopped answering then holds up one write until its timeout, not every write in
 * turn. What is refused stays in the outbox, whose relay delivers it once the window is over.
 */
export class FailFast {
  readonly #what: string
  readonly #windowMs: number
  readonly #now: () => number
  readonly #outage: OutageLog
  readonly #onRecovered: () => void
  #refusingUntil = 0

  /** `what` names the dependency at the start of a sentence: 'Publishing to Redis'. */
  constructor(what: string, windowMs: number, options: FailFastOptions) {
    this.#what = what
    this.#windowMs = windowMs
    this.#now = options.now ?? Date.now
    this.#outage = new OutageLog(options.logger, what, this.#now)
    this.#onRecovered = options.onRecovered ?? (() => {})
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#now() < this.#refusingUntil) {
      throw new DependencyDown(`${this.#what} failed a moment ago; the outbox will deliver this later`)
    }
    let result: T
    try {
      result = await work()
    } catch (error) {
      this.#refusingUntil = this.#now() + this.#windowMs
      this.#outage.failed(error)
      const reason = error instanceof Error ? error.message : String(error)
      throw new DependencyDown(`${this.#what} failed: ${reason}`, { cause: error })
    }
    if (this.#outage.succeeded()) this.#onRecovered()
    return result
  }
}
