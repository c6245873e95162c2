import { Unavailable } from './ports.ts'

/**
 * For `windowMs` after a failure, refuses at once what would go to a dependency that just failed: a mail
 * server or a Redis that stopped answering then holds up one write until its timeout, not every write in
 * turn. What is refused stays in the outbox, whose relay delivers it once the window is over.
 */
export class FailFast {
  readonly #what: string
  readonly #windowMs: number
  readonly #now: () => number
  #refusingUntil = 0

  constructor(what: string, windowMs: number, now: () => number = Date.now) {
    this.#what = what
    this.#windowMs = windowMs
    this.#now = now
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#now() < this.#refusingUntil) {
      throw new Unavailable(`${this.#what} failed a moment ago; the outbox will deliver this later`)
    }
    try {
      return await work()
    } catch (error) {
      this.#refusingUntil = this.#now() + this.#windowMs
      throw error
    }
  }
}
