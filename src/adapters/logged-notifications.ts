import type { Logger, Notifications } from '../service-layer/ports.ts'

/** The embedded default: the notification goes to the log for whoever watches it. */
export class LoggedNotifications implements Notifications {
  readonly #logger: Logger

  constructor(logger: Logger) {
    this.#logger = logger
  }

  async send(subject: string, body: string): Promise<void> {
    this.#logger.warn({ notification: { subject, body } }, subject)
  }
}
