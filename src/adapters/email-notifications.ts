import { createTransport } from 'nodemailer'
import { FailFast } from '../service-layer/fail-fast.ts'
import type { Logger, Notifications } from '../service-layer/ports.ts'

export type EmailNotificationsOptions = Readonly<{
  /** `smtp://user:pass@host:port` or `smtps://...`; query parameters are nodemailer options (`?ignoreTLS=true`). */
  smtpUrl: string
  /** The stock team's address. */
  to: string
  from?: string
  /** Told when mailing starts failing, while it goes on, and when it works again. */
  logger: Logger
  /** Called when mailing works again after failing. */
  onRecovered?: () => void
}>

type Transport = ReturnType<typeof createTransport>

/** Mails the stock team. The transport is made on the first send: building the service connects nothing. */
export class EmailNotifications implements Notifications {
  readonly #options: EmailNotificationsOptions
  #transport: Transport | undefined
  /** A mail server that just failed (or hung until a timeout) is not waited for by the next write. */
  readonly #failFast: FailFast

  constructor(options: EmailNotificationsOptions) {
    this.#options = options
    const { logger, onRecovered } = options
    this.#failFast = new FailFast('Sending mail to the mail server', 30_000, { logger, onRecovered })
  }

  send(subject: string, body: string): Promise<void> {
    return this.#failFast.run(() => this.#send(subject, body))
  }

  async #send(subject: string, body: string): Promise<void> {
    this.#transport ??= createTransport({
      url: this.#options.smtpUrl,
      // A notification is sent in line with the write that ran out of stock; an unreachable mail server
      // must fail it soon (the outbox retries it later) rather than hold the write for nodemailer's minutes.
      connectionTimeout: 5000,
      greetingTimeout: 5000,
      socketTimeout: 10_000,
    })
    await this.#transport.sendMail({
      from: this.#options.from ?? 'allocation@localhost',
      to: this.#options.to,
      subject,
      text: body,
    })
  }

  close(): void {
    this.#transport?.close()
  }
}
