import { type AddressInfo, createServer } from 'node:net'
import { text } from 'node:stream/consumers'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EmailNotifications } from '../../src/adapters/email-notifications.ts'
import { createLogger } from '../../src/adapters/logger.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { openTestDatabase, type TestDatabase } from './support.ts'

type Mail = Readonly<{ from: string | undefined; to: string[]; subject: string | undefined; body: string }>

describe('EmailNotifications', () => {
  const stockTeam = 'stock-team@example.com'
  const received: Mail[] = []
  const server = new SMTPServer({
    authOptional: true,
    logger: false,
    async onData(stream, session, callback) {
      const raw = await text(stream)
      const [head = '', body = ''] = raw.split('\r\n\r\n', 2)
      received.push({
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
        to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
        subject: /^Subject: (.*)$/m.exec(head)?.[1]?.trim(),
        body,
      })
      callback()
    },
  })
  let test: TestDatabase | null = null
  let service: Service
  let notifications: EmailNotifications

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.server.address() as AddressInfo
    // The test server offers STARTTLS with a self-signed certificate; a URL parameter tells nodemailer to stay plain.
    notifications = new EmailNotifications({
      smtpUrl: `smtp://127.0.0.1:${port}?ignoreTLS=true`,
      to: stockTeam,
      logger: createLogger('silent'),
    })
    test = await openTestDatabase('pglite')
    service = bootstrap(loadConfig({ LOG_LEVEL: 'silent' }), { database: test?.database, notifications })
  })
  afterAll(async () => {
    notifications.close()
    await new Promise<void>((resolve) => server.close(resolve))
    await test?.drop()
  })

  it('mails the stock team "Out of stock for <sku>" when an order line finds no stock', async () => {
    const [sku, orderid] = [randomSku(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 1, eta: null })

    expect(await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 5 })).toMatchObject({
      status: 'out_of_stock',
      batchref: null,
    })

    const mails = received.filter((mail) => mail.subject === `Out of stock for ${sku}`)
    expect(mails).toEqual([
      {
        from: 'allocation@localhost',
        to: [stockTeam],
        subject: `Out of stock for ${sku}`,
        body: expect.stringContaining(orderid),
      },
    ])
    expect(textOf(mails[0]?.body ?? '')).toBe(`Order ${orderid} asked for 5 of ${sku}; no batch can take it.`)
  })

  it('tells the stock team that a backordered line waits, and for how much', async () => {
    const [sku, orderid] = [randomSku(), randomOrderid()]
    await service.bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku, qty: 1, eta: null })

    await service.bus.handle({ type: 'Allocate', orderid, sku, qty: 5, backorder: true })

    const mails = received.filter((mail) => mail.subject === `Out of stock for ${sku}`)
    expect(mails.map((mail) => textOf(mail.body))).toEqual([
      `Order ${orderid} asked for 5 of ${sku}; no batch can take it now, so the line waits as a backorder of 5 and is allocated as soon as stock arrives.`,
    ])
  })

  it('names the mail server in the log, once, when it cannot be reached', async () => {
    const lines: Array<[string, string | undefined]> = []
    const line = (level: string) => (_obj: object, msg?: string) => void lines.push([level, msg])
    const logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') }
    const unreachable = new EmailNotifications({
      smtpUrl: `smtp://127.0.0.1:${await closedPort()}`,
      to: stockTeam,
      logger,
    })

    await expect(unreachable.send('Out of stock for LAMP', 'body')).rejects.toThrow(
      /^Sending mail to the mail server failed: /,
    )
    await expect(unreachable.send('Out of stock for LAMP', 'body')).rejects.toThrow('failed a moment ago')
    expect(lines).toEqual([['error', 'Sending mail to the mail server failed']])
    unreachable.close()
  })
})

/** A mail's text as written: long lines come quoted-printable, cut with soft breaks. */
function textOf(body: string): string {
  return body
    .replaceAll('=\r\n', '')
    .replaceAll(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    .trim()
}

/** A port on this machine where nothing listens: connections to it are refused. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
