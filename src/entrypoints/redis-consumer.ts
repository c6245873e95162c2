import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRedisClient, execOrThrow } from '../adapters/redis-connection.ts'
import { BatchConflict, InvalidSku, LineConflict, NotAllocated, UnknownBatch } from '../domain/errors.ts'
import type { MessageBus } from '../service-layer/message-bus.ts'
import type { Logger } from '../service-layer/ports.ts'
import { MalformedMessage, parseBatchQuantityMessage, parseCommand } from './command-schemas.ts'

/** Where commands come from; the defaults are the contract other services rely on. */
export type CommandKeys = Readonly<{
  /** Stream of entries with fields `type` and `payload` (JSON of the command's fields). */
  commands: string
  /** The consumer group every process of this service reads `commands` with. */
  group: string
  /** Messages that were not handled, each with fields `source`, `reason`, `message` (and `id` for entries). */
  deadLetter: string
  /** The book's pub/sub channel, `{"batchref", "qty"}`. */
  changeBatchQuantity: string
}>

export const defaultCommandKeys: CommandKeys = {
  commands: 'allocation:commands',
  group: 'allocation',
  deadLetter: 'allocation:dead-letter',
  changeBatchQuantity: 'change_batch_quantity',
}

export type RedisConsumerOptions = Readonly<{
  bus: MessageBus
  logger: Logger
  redisUrl: string
  keys?: Partial<CommandKeys>
  /** This process's name in the group (default `<hostname>-<pid>`). */
  consumerName?: string
  /** How long one read waits for new entries (default 1000 ms). */
  blockMs?: number
  /** An entry handed out this long ago (ms) and still not acknowledged is taken over (default 30 s). */
  claimIdleMs?: number
  /** Deliveries of an entry that keeps failing before it goes to the dead-letter stream (default 5). */
  maxDeliveries?: number
}>

export type RedisConsumer = Readonly<{
  /** Resolves once subscribed with the group in place (retrying until Redis answers), or once stopped. */
  ready: Promise<void>
  /** Finishes the message in hand, then closes both connections. */
  stop(): Promise<void>
}>

type Entry = [id: string, fields: string[] | null]

/** Expected business refusals: handling the message again cannot change the answer. */
const refusals = [InvalidSku, UnknownBatch, BatchConflict, LineConflict, NotAllocated]

/**
 * Applies the commands other services send through Redis. Entries of the stream are acknowledged only
 * once their transaction committed, and recorded with it, so a redelivered entry is applied once. An entry
 * that failed for a passing reason (the database is down) stays pending and is taken over again after
 * `claimIdleMs`, by this process or another; whatever cannot succeed goes to the dead-letter stream.
 */
export function startRedisConsumer(options: RedisConsumerOptions): RedisConsumer {
  const { bus, logger, redisUrl } = options
  const keys: CommandKeys = { ...defaultCommandKeys, ...options.keys }
  const consumer = options.consumerName ?? `${hostname()}-${process.pid}`
  const blockMs = options.blockMs ?? 1000
  const claimIdleMs = options.claimIdleMs ?? 30_000
  const maxDeliveries = options.maxDeliveries ?? 5
  const name = `allocation-consumer:${consumer}`.replaceAll(/[^\w.:-]/g, '_')
  // Two connections: a subscribed one can run nothing else, and the reader blocks while it waits.
  const reader = createRedisClient(redisUrl, { name: `${name}:reader`, logger })
  const subscriber = createRedisClient(redisUrl, { name: `${name}:subscriber`, logger })
  const stopping = new AbortController()
  const pause = (ms: number) => sleep(ms, undefined, { signal: stopping.signal }).catch(() => {})
  const groupReady = Promise.withResolvers<void>()
  const lastErrors = new Map<string, string>()
  let reading = false
  let claimCursor = '0-0'
  // Channel messages are handled one at a time, in the order they were published.
  let inLine = Promise.resolve()

  subscriber.on('message', (_channel: string, text: string) => {
    inLine = inLine.then(() => onBatchQuantity(text))
  })
  const subscribed = subscribe()
  const loop = readCommands()
  let stopped: Promise<void> | undefined

  async function subscribe(): Promise<void> {
    for (let attempt = 1; !stopping.signal.aborted; attempt++) {
      try {
        await subscriber.subscribe(keys.changeBatchQuantity)
        return
      } catch (error) {
        if (!stopping.signal.aborted) logger.warn({ err: error }, 'could not subscribe to Redis; retrying')
        await pause(backoffMs(attempt))
      }
    }
  }

  async function onBatchQuantity(text: string): Promise<void> {
    const source = keys.changeBatchQuantity
    try {
      await bus.handle(parseBatchQuantityMessage(text))
    } catch (error) {
      // Pub/sub delivers at most once: keep what failed where someone can see it and send it again.
      logFailure(error, { source, message: text })
      try {
        await reader.xadd(keys.deadLetter, 'MAXLEN', '~', 100_000, '*', ...deadLetterFields(source, error, text))
      } catch (lost) {
        logger.error({ err: lost, source, message: text }, 'could not dead-letter a message; it is lost')
      }
    }
  }

  async function readCommands(): Promise<void> {
    let groupExists = false
    for (let failures = 0; !stopping.signal.aborted; ) {
      try {
        if (!groupExists) {
          await createGroup()
          groupExists = true
          groupReady.resolve()
        }
        await takeOverStale()
        await readNew()
        failures = 0
      } catch (error) {
        if (stopping.signal.aborted) break
        if (errorCode(error) === 'NOGROUP') {
          // Redis restarted and lost the stream with its group (it keeps nothing on disk): start afresh.
          logger.warn({ stream: keys.commands }, 'the command stream vanished; creating it again')
          groupExists = false
          continue
        }
        failures++
        logger.error({ err: error, stream: keys.commands }, 'reading commands from Redis failed; retrying')
        await pause(backoffMs(failures))
      }
    }
    groupReady.resolve()
  }

  async function createGroup(): Promise<void> {
    try {
      // From the start of the stream: commands sent before the first consumer ever ran are still applied.
      await reader.xgroup('CREATE', keys.commands, keys.group, '0', 'MKSTREAM')
    } catch (error) {
      if (errorCode(error) !== 'BUSYGROUP') throw error
    }
  }

  async function readNew(): Promise<void> {
    if (stopping.signal.aborted) return
    reading = true
    const reply = (await reader
      .xreadgroup('GROUP', keys.group, consumer, 'COUNT', 100, 'BLOCK', blockMs, 'STREAMS', keys.commands, '>')
      .finally(() => {
        reading = false
      })) as [stream: string, entries: Entry[]][] | null
    for (const [, entries] of reply ?? []) {
      for (const entry of entries) {
        // Entries read but not handled stay pending and are taken over later.
        if (stopping.signal.aborted) return
        await handleEntry(entry, 1)
      }
    }
  }

  /** Entries whose consumer failed, died or was restarted under another name. */
  async function takeOverStale(): Promise<void> {
    const reply = await reader.xautoclaim(keys.commands, keys.group, consumer, claimIdleMs, claimCursor, 'COUNT', 100)
    const [next, entries] = reply as [cursor: string, entries: Entry[]]
    claimCursor = next
    for (const entry of entries) {
      if (stopping.signal.aborted) return
      const [pending] = (await reader.xpending(keys.commands, keys.group, entry[0], entry[0], 1)) as [
        [id: string, consumer: string, idleMs: number, deliveries: number]?,
      ]
      await handleEntry(entry, pending?.[3] ?? 1)
    }
  }

  async function handleEntry([id, fields]: Entry, deliveries: number): Promise<void> {
    const source = keys.commands
    // Redis before 7 hands out entries deleted from the stream with no fields; there is nothing to apply.
    if (fields === null) return acknowledge(id)
    const byName = fieldMap(fields)
    const message = JSON.stringify(Object.fromEntries(byName))
    if (deliveries > maxDeliveries) {
      const last = lastErrors.get(id) ?? 'not known to this process'
      const error = new Error(`Not handled in ${maxDeliveries} deliveries; the last error: ${last}`)
      logger.error({ source, id, message }, error.message)
      return deadLetter(id, error, message)
    }
    try {
      await bus.handleOnce(`${source}:${id}`, parseCommand(byName.get('type'), byName.get('payload')))
    } catch (error) {
      logFailure(error, { source, id, message, deliveries })
      if (error instanceof MalformedMessage || isRefusal(error)) return deadLetter(id, error, message)
      lastErrors.set(id, reasonOf(error))
      return
    }
    await acknowledge(id)
  }

  async function acknowledge(id: string): Promise<void> {
    lastErrors.delete(id)
    await reader.xack(keys.commands, keys.group, id)
  }

  /** In one transaction, so the entry is never acknowledged without its dead letter. */
  async function deadLetter(id: string, error: unknown, message: string): Promise<void> {
    lastErrors.delete(id)
    await execOrThrow(
      reader
        .multi()
        .xadd(
          keys.deadLetter,
          'MAXLEN',
          '~',
          100_000,
          '*',
          'id',
          id,
          ...deadLetterFields(keys.commands, error, message),
        )
        .xack(keys.commands, keys.group, id),
    )
  }

  function logFailure(error: unknown, context: object): void {
    if (error instanceof MalformedMessage) logger.warn({ ...context, reason: error.message }, 'malformed message')
    else if (isRefusal(error)) logger.warn({ ...context, reason: reasonOf(error) }, 'command refused')
    else logger.error({ ...context, err: error }, 'command failed')
  }

  return {
    ready: Promise.all([subscribed, groupReady.promise]).then(() => {}),
    stop() {
      stopped ??= (async () => {
        stopping.abort()
        subscriber.disconnect()
        await inLine
        // Ends a read that is waiting now; what it would have handed out stays pending for a take-over.
        if (reading) reader.disconnect()
        await Promise.all([loop, subscribed])
        reader.disconnect()
      })()
      return stopped
    },
  }
}

function deadLetterFields(source: string, error: unknown, message: string): string[] {
  return ['source', source, 'reason', reasonOf(error), 'message', message]
}

function isRefusal(error: unknown): boolean {
  return refusals.some((refusal) => error instanceof refusal)
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

/** Redis errors start with their code: `NOGROUP No such key ...`. */
function errorCode(error: unknown): string | undefined {
  return error instanceof Error ? error.message.split(' ', 1)[0] : undefined
}

/** An entry's fields by name; the first of a repeated name wins. */
function fieldMap(fields: string[]): Map<string, string> {
  const byName = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const [name, value] = [fields[i] as string, fields[i + 1] as string]
    if (!byName.has(name)) byName.set(name, value)
  }
  return byName
}

function backoffMs(attempt: number): number {
  return Math.min(100 * 2 ** attempt, 5000) * (0.5 + Math.random() / 2)
}
