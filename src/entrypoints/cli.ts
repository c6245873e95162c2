import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Command as Program } from 'commander'
import { parse } from 'csv-parse'
import { pino } from 'pino'
import { bootstrap, type Service } from '../bootstrap.ts'
import { loadConfig } from '../config.ts'
import type { CreateBatch } from '../domain/commands.ts'
import { InvalidInput, parseInput } from './cli-input.ts'
import { AnonymousRefused, InvalidApiKeys } from './http/api-keys.ts'
import { BatchEta, NewAllocation, NewBatch, RefParams } from './http/schemas.ts'
import { startServer } from './http/server.ts'
import { progressBar } from './progress-bar.ts'
import { startRedisConsumer } from './redis-consumer.ts'

/** The `allocation` command; with no sub-command it serves, as `npm start` does. */
export function createCli(): Program {
  const program = new Program('allocation')
    .description('Decides which batch of stock serves each order line. Reads the same environment as the server.')
    .showHelpAfterError()

  program
    .command('serve', { isDefault: true })
    .description('serve the HTTP API, and deliver the outbox in the background')
    .option('--no-relay', 'leave outbox delivery to a separate `allocation relay` process')
    .option('--no-consumer', 'leave the Redis commands to a separate `allocation consume` process')
    .action(async ({ relay, consumer }: { relay: boolean; consumer: boolean }) => serve(relay, consumer))

  program
    .command('relay')
    .description('only deliver the outbox (for running it apart from the HTTP processes)')
    .action(() => relayOnly())

  program
    .command('consume')
    .description('only apply the commands that arrive through Redis (REDIS_URL)')
    .action(() => consumeOnly())

  program
    .command('migrate')
    .description('bring the database schema up to date')
    .action(() => withService(async (service) => service.migrate()))

  program
    .command('add-batch <ref> <sku> <qty>')
    .description('add a batch of stock')
    .option('--eta <date>', 'arrival date YYYY-MM-DD; leave out for stock in the warehouse')
    .action((ref: string, sku: string, qty: string, { eta }: { eta?: string }) =>
      withService(async (service) => {
        const batch = parseInput<Omit<CreateBatch, 'type'>>(
          NewBatch,
          { ref, sku, qty: integer(qty), eta: eta ?? null },
          'batch',
        )
        const { created } = await service.bus.handle({ type: 'CreateBatch', ...batch })
        console.log(created ? `Added batch ${ref}` : `Batch ${ref} was already there`)
      }),
    )

  program
    .command('import-batches <file>')
    .description('add the batches of a CSV file with the columns ref,sku,qty,eta (eta empty for warehouse stock)')
    .action((file: string) => withService((service) => importBatches(service, file)))

  program
    .command('allocate <orderid> <sku> <qty>')
    .description('allocate an order line, hold it for a checkout, or keep it waiting for stock')
    .option('--backorder', 'keep the line waiting when no batch can take it now')
    .option('--hold <seconds>', 'hold the stock for a checkout for this many seconds (1 to 86400)')
    .action((orderid: string, sku: string, qty: string, options: { backorder?: boolean; hold?: string }) =>
      withService(async (service) => {
        const line = parseInput<{
          orderid: string
          sku: string
          qty: number
          backorder: boolean
          holdSeconds?: number
        }>(
          NewAllocation,
          {
            orderid,
            sku,
            qty: integer(qty),
            backorder: options.backorder ?? false,
            ...(options.hold === undefined ? {} : { holdSeconds: integer(options.hold) }),
          },
          'line',
        )
        const result = await service.bus.handle({ type: 'Allocate', ...line, holdSeconds: line.holdSeconds ?? null })
        const { status, batchref, expiresAt } = result
        if (status === 'out_of_stock') {
          console.log(`Out of stock: no batch of ${sku} can take ${qty}`)
          process.exitCode = 3
        } else if (status === 'backordered') console.log(`Backordered ${qty} of ${sku} for order ${orderid}`)
        else if (status === 'held') {
          console.log(`Held ${qty} of ${sku} for order ${orderid} on batch ${batchref} until ${expiresAt}`)
        } else console.log(`Allocated ${qty} of ${sku} for order ${orderid} from batch ${batchref}`)
      }),
    )

  program
    .command('set-eta <ref> <date>')
    .description("change a batch's eta: a date YYYY-MM-DD when the shipment slipped, or `arrived`")
    .action((ref: string, date: string) =>
      withService(async (service) => {
        parseInput(RefParams, { ref }, 'batch reference')
        const { eta } = parseInput<{ eta: string | null }>(BatchEta, { eta: date === 'arrived' ? null : date }, 'eta')
        await service.bus.handle({ type: 'ChangeBatchEta', ref, eta })
        console.log(eta === null ? `Batch ${ref} has arrived` : `Batch ${ref} now arrives ${eta}`)
      }),
    )

  program
    .command('order <orderid>')
    .description("show an order's lines with their state, batch, eta and hold expiry")
    .action((orderid: string) =>
      withService(async (service) => {
        const lines = await service.views.order(orderid)
        if (lines.length === 0) throw new InvalidInput(`Order ${orderid} has no lines`)
        console.table(
          lines.map(({ sku, qty, status, batchref, eta, expiresAt }) => ({
            sku,
            qty,
            status,
            batch: batchref ?? '-',
            eta: batchref === null ? '-' : (eta ?? 'warehouse'),
            expires: expiresAt ?? '-',
          })),
        )
      }),
    )

  program
    .command('stock <sku>')
    .description("show a sku's batches in allocation order")
    .action((sku: string) =>
      withService(async (service) => {
        const product = await service.views.product(sku)
        if (!product) throw new InvalidInput(`There is no stock of ${sku}`)
        console.table(
          product.batches.map(({ ref, eta, purchased, allocated, available }) => ({
            ref,
            eta: eta ?? 'warehouse',
            purchased,
            allocated,
            available,
          })),
        )
        const { purchased, allocated, available, held, backordered } = product.totals
        console.log(`Total: ${purchased} purchased, ${allocated} allocated, ${available} available`)
        if (held > 0 || backordered > 0) console.log(`Of which held: ${held}; waiting as backorders: ${backordered}`)
      }),
    )

  return program
}

function integer(text: string): number | string {
  return /^-?\d+$/.test(text) ? Number(text) : text
}

/** Runs one command against the database, migrated, and closes it; input errors are one line, exit 2. */
async function withService(work: (service: Service) => Promise<void>): Promise<void> {
  const config = loadConfig()
  // Standard output is the command's answer; the log (notifications included) goes to standard error.
  const service = bootstrap(config, { logger: pino({ level: config.logLevel }, pino.destination(2)) })
  try {
    await service.migrate()
    await work(service)
  } catch (error) {
    if (!(error instanceof Error) || error.name === 'Error' || error.name === 'TypeError') throw error
    console.error(error.message)
    process.exitCode = error instanceof InvalidInput ? 2 : 1
  } finally {
    await service.close()
  }
}

async function importBatches(service: Service, file: string): Promise<void> {
  const { size } = await stat(file)
  const bar = progressBar(size)
  const counts = { added: 0, present: 0, refused: 0 }
  const records = createReadStream(file).pipe(parse({ columns: true, skip_empty_lines: true, trim: true, info: true }))
  for await (const { record, info } of records as AsyncIterable<{
    record: Record<string, string>
    info: { lines: number; bytes: number }
  }>) {
    try {
      const { ref, sku, qty, eta } = record
      const batch = parseInput<Omit<CreateBatch, 'type'>>(
        NewBatch,
        { ref, sku, qty: integer(qty ?? ''), eta: eta ? eta : null },
        `batch on line ${info.lines}`,
      )
      const { created } = await service.bus.handle({ type: 'CreateBatch', ...batch })
      counts[created ? 'added' : 'present'] += 1
    } catch (error) {
      counts.refused += 1
      bar.interrupt(`Line ${info.lines}: ${(error as Error).message}`)
    }
    bar.update(info.bytes)
  }
  bar.done()
  console.log(`${counts.added} batches added, ${counts.present} already there, ${counts.refused} refused`)
  if (counts.refused > 0) process.exitCode = 1
}

async function serve(relay: boolean, consumer: boolean): Promise<void> {
  try {
    const server = await startServer(loadConfig(), { relay, consumer })
    stopOnSignal(server.service.logger, () => server.close())
  } catch (error) {
    if (error instanceof AnonymousRefused || error instanceof InvalidApiKeys) {
      console.error(error.message)
      process.exit(2)
    }
    pino().fatal({ err: error }, 'The allocation service could not start')
    process.exit(1)
  }
}

async function relayOnly(): Promise<void> {
  const service = bootstrap(loadConfig())
  await service.migrate()
  service.relay.start()
  service.logger.info({}, 'Delivering the outbox')
  stopOnSignal(service.logger, () => service.close())
}

async function consumeOnly(): Promise<void> {
  const config = loadConfig()
  if (!config.redisUrl) {
    console.error('allocation consume needs REDIS_URL')
    process.exitCode = 2
    return
  }
  const service = bootstrap(config)
  await service.migrate()
  const consumer = startRedisConsumer({
    bus: service.bus,
    logger: service.logger,
    redisUrl: config.redisUrl,
    metrics: service.metrics,
  })
  service.logger.info({}, 'Applying the commands that arrive through Redis')
  stopOnSignal(service.logger, async () => {
    await consumer.stop()
    await service.close()
  })
}

/** Long enough for requests in flight to finish; a stuck connection must not keep the process alive. */
const SHUTDOWN_GRACE_MS = 10_000

function stopOnSignal(logger: Service['logger'], close: () => Promise<void>): void {
  let stopping = false
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'Shutting down')
    setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref()
    try {
      await close()
      process.exit(0)
    } catch (error) {
      logger.error({ err: error }, 'Shutdown failed')
      process.exit(1)
    }
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}
