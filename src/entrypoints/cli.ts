import { Command as Program } from 'commander'
import { pino } from 'pino'
import { Value } from 'typebox/value'
import { DatabaseInUse } from '../adapters/postgres/database.ts'
import { bootstrap, type Service } from '../bootstrap.ts'
import { type Config, loadConfig } from '../config.ts'
import type { CreateBatch } from '../domain/commands.ts'
import { HoldWithBackorder, InvalidSku, UnknownBatch } from '../domain/errors.ts'
import { InvalidInput, NotFound, parseInput } from './cli-input.ts'
import { type CliTarget, databaseTarget, httpTarget } from './cli-target.ts'
import { AnonymousRefused, InvalidApiKeys } from './http/api-keys.ts'
import { BatchEta, DATE_PROBLEM, NewAllocation, NewBatch, RefParams } from './http/schemas.ts'
import { startServer } from './http/server.ts'
import { importBatches } from './import-batches.ts'
import { startRedisConsumer } from './redis-consumer.ts'

const EXIT_CODES = `
Exit codes:
  0  done
  1  refused or failed: a conflict, the service unreachable or refusing the key
  2  bad input: a usage error, an invalid argument, option or file
  3  out of stock (allocate)
  4  not found: no such batch, order or sku`

/** The `allocation` command; with no sub-command it serves, as `npm start` does. */
export function createCli(): Program {
  const program = new Program('allocation')
    .description('Decides which batch of stock serves each order line. Reads the same environment as the server.')
    .showHelpAfterError()
    .addHelpText('after', EXIT_CODES)
    // Commander's usage errors exit 1; here they are bad input, as an invalid argument is. Inherited by
    // the sub-commands, which are added below.
    .exitOverride(({ exitCode }) => process.exit(exitCode === 0 ? 0 : 2))
    .option('--url <url>', 'work through the HTTP API of a running service (env ALLOCATION_URL; API_KEY is sent)')
  // The commands that change or show stock go to a running service when given its URL, else to the database.
  const withTarget = (work: (target: CliTarget) => Promise<void>) => {
    const url = (program.opts().url as string | undefined) || process.env.ALLOCATION_URL
    if (url) return inCommand(() => work(httpTarget(url, process.env.API_KEY || null)))
    return withService((service) => work(databaseTarget(service)))
  }

  program
    .command('serve', { isDefault: true })
    .description('serve the HTTP API, and deliver the outbox in the background')
    .option('--no-relay', 'leave outbox delivery to a separate `allocation relay` process')
    .option('--no-consumer', 'leave the Redis commands to a separate `allocation consume` process')
    // As the default, serve is given whatever else was typed: a word there is a command misspelt.
    .allowExcessArguments()
    .action(async ({ relay, consumer }: { relay: boolean; consumer: boolean }, command: Program) => {
      const [word] = command.args
      if (word !== undefined) program.error(`error: unknown command '${word}'`, { code: 'commander.unknownCommand' })
      return serve(relay, consumer)
    })

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
    .action(() => {
      if (program.opts().url) {
        console.error('migrate works on the database itself; a running service migrates when it starts')
        process.exitCode = 2
        return
      }
      return withService(async (service) => service.migrate(), false)
    })

  program
    .command('add-batch <ref> <sku> <qty>')
    .description('add a batch of stock')
    .option('--eta <date>', 'arrival date YYYY-MM-DD; leave out for stock in the warehouse')
    .action((ref: string, sku: string, qty: string, { eta }: { eta?: string }) =>
      withTarget(async (target) => {
        const batch = parseInput<Omit<CreateBatch, 'type'>>(
          NewBatch,
          { ref, sku, qty: integer(qty), eta: eta ?? null },
          'batch',
          { eta: '--eta' },
        )
        const { created } = await target.addBatch(batch)
        console.log(created ? `Added batch ${ref}` : `Batch ${ref} was already there`)
      }),
    )

  program
    .command('import-batches <file>')
    .description(
      'add the batches of a CSV file with the columns ref,sku,qty,eta (eta empty for warehouse stock), ' +
        'a transaction per chunk of rows; batches already there are left as they are',
    )
    .action((file: string) =>
      withTarget(async (target) => {
        const { added, present, notWritten, badRows, rows, seconds } = await importBatches(target, file)
        const refused = notWritten > 0 ? `, ${notWritten} not written (chunks with ${count(badRows, 'bad row')})` : ''
        const rate = `${count(rows, 'row')} in ${seconds.toFixed(1)} s, ${Math.round(rows / Math.max(seconds, 0.001))} rows/s`
        console.log(`${count(added, 'batch', 'batches')} added, ${present} already there${refused} (${rate})`)
        if (notWritten > 0) process.exitCode = 1
      }),
    )

  program
    .command('allocate <orderid> <sku> <qty>')
    .description('allocate an order line, hold it for a checkout, or keep it waiting for stock')
    .option('--backorder', 'keep the line waiting when no batch can take it now')
    .option('--hold <seconds>', 'hold the stock for a checkout for this many seconds (1 to 86400)')
    .action((orderid: string, sku: string, qty: string, options: { backorder?: boolean; hold?: string }) =>
      withTarget(async (target) => {
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
          { holdSeconds: '--hold' },
        )
        const result = await target.allocate({ ...line, holdSeconds: line.holdSeconds ?? null })
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
      withTarget(async (target) => {
        parseInput(RefParams, { ref }, 'batch reference')
        const eta = date === 'arrived' ? null : date
        if (!Value.Check(BatchEta, { eta })) {
          throw new InvalidInput(`Invalid eta: date ${DATE_PROBLEM}, or arrived, not ${JSON.stringify(date)}`)
        }
        await target.changeEta(ref, eta)
        console.log(eta === null ? `Batch ${ref} has arrived` : `Batch ${ref} now arrives ${eta}`)
      }),
    )

  program
    .command('order <orderid>')
    .description("show an order's lines with their state, batch, eta and hold expiry")
    .action((orderid: string) =>
      withTarget(async (target) => {
        const lines = await target.order(orderid)
        if (lines.length === 0) throw new NotFound(`Order ${orderid} has no lines`)
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
      withTarget(async (target) => {
        const product = await target.product(sku)
        if (!product) throw new NotFound(`There is no stock of ${sku}`)
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

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/**
 * Runs one command against the database, migrated, and closes it. `throughServer`: the command could go
 * through a running server instead (said when that server holds the embedded database).
 */
async function withService(work: (service: Service) => Promise<void>, throughServer = true): Promise<void> {
  await inCommand(async () => {
    const config = configuration()
    const service = openService(config, throughServer)
    try {
      await service.migrate()
      await work(service)
    } finally {
      await service.close()
    }
  })
}

function configuration(): Config {
  try {
    return loadConfig()
  } catch (error) {
    // Every failure of loadConfig is a variable it cannot read; its message names it.
    throw new InvalidInput((error as Error).message)
  }
}

function openService(config: Config, throughServer: boolean): Service {
  try {
    // Standard output is the command's answer; the log (notifications included) goes to standard error.
    return bootstrap(config, { logger: pino({ level: config.logLevel }, pino.destination(2)) })
  } catch (error) {
    if (!(error instanceof DatabaseInUse)) throw error
    const url = `--url http://${config.host}:${config.port}`
    const instead = throughServer ? `, or send the command through that server with ${url} (or ALLOCATION_URL)` : ''
    throw new DatabaseInUse(`${error.message}${instead}`)
  }
}

/** An expected failure (bad input, a refusal) is one line on stderr and an exit code; a bug keeps its stack. */
async function inCommand(work: () => Promise<void>): Promise<void> {
  try {
    await work()
  } catch (error) {
    if (!(error instanceof Error) || error.name === 'Error' || error.name === 'TypeError') throw error
    console.error(error.message)
    process.exitCode = exitCodeOf(error)
  }
}

/** The codes listed in EXIT_CODES; out of stock (3) is an answer, not an error. */
function exitCodeOf(error: Error): number {
  if (error instanceof InvalidInput || error instanceof HoldWithBackorder) return 2
  if (error instanceof NotFound || error instanceof UnknownBatch || error instanceof InvalidSku) return 4
  return 1
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
