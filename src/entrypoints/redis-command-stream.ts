import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import { abandonOnAbort, execOrThrow } from '../adapters/redis-connection.ts'
import {
  BatchConflict,
  HoldWithBackorder,
  InvalidSku,
  LineConflict,
  NotAllocated,
  UnknownBatch,
} from '../domain/errors.ts'
import type { MessageBus } from '../service-layer/message-bus.ts'
import { OutageLog } from '../service-layer/outage-log.ts'
import { type Logger, type Metrics, Unavailable } from '../service-layer/ports.ts'
import { MalformedMessage, parseCommand } from './command-schemas.ts'

export type CommandStreamOptions = Readonly<{
  bus: MessageBus
  logger: Logger
  /** For the blocking reads alone, so that stopping can cut a read short without losing anything else. */
  reader: Redis
  /** For everything else: the group, take-overs, acknowledgements, dead letters. */
  writer: Redis
  stream: string
  group: string
  consumer: string
  deadLetter: string
  blockMs: number
  claimIdleMs: number
  maxDeliveries: number
  /** Aborted to stop: the entry in hand is finished, the others stay pending. */
  signal: AbortSignal
  metrics?: Metrics
}>

type Entry = [id: string, fields: string[] | null]

/** How long a stopping consumer tries to leave its group. */
const LEAVE_WITHIN_MS = 1000

/** Business refusals: handling the command again cannot change the answer. */
const refusals = [InvalidSku, UnknownBatch, BatchConflict, LineConflict, NotAllocated, HoldWithBackorder]

/**
 * Applies the stream's entries until `signal` aborts. An entry is acknowledged only after its transaction
 * committed, which also recorded its id, so an entry delivered again is applied once. One that failed for a
 * passing reason (the database is down) stays pending and is taken over again after `claimIdleMs`, here or
 * by another process; one that cannot succeed goes to the dead-letter stream, and so does one that failed
 * `maxDeliveries` times for another reason. An outage (`Unavailable`, as this process last saw it) is waited
 * out however long it lasts: the command is valid, only the database is missing. `groupReady` resolves once
 * the group exists (or on abort).
 */
export function consumeCommandStream(options: CommandStreamOptions): {
  groupReady: Promise<void>
  done: Promise<void>
} {
  const { bus, logger, reader, writer, stream, group, consumer, signal } = options
  const groupReady = Promise.withResolvers<void>()
  const pause = (ms: number) => sleep(ms, undefined, { signal }).catch(() => {})
  // Waits that may be abandoned on stop: nothing is in hand yet. The acknowledgement of an entry in hand is
  // awaited; the writer stays connected until the loop ends, so it fails at worst, never hangs.
  const until = abandonOnAbort(signal)
  const lastErrors = new Map<string, { reason: string; outage: boolean }>()
  let claimCursor = '0-0'
  let failingInARow = 0
  const reading = new OutageLog(logger, 'reading commands from Redis')

  async function run(): Promise<void> {
    let groupExists = false
    for (let failures = 0; !signal.aborted; ) {
      try {
        if (!groupExists) {
          await createGroup()
          groupExists = true
          groupReady.resolve()
        }
        await takeOverStale()
        await readNew()
        failures = 0
        reading.succeeded()
      } catch (error) {
        if (signal.aborted) break
        if (errorCode(error) === 'NOGROUP') {
          // Redis restarted and lost the stream with its group (it keeps nothing on disk): start afresh.
          logger.warn({ stream }, 'the command stream vanished; creating it again')
          groupExists = false
          claimCursor = '0-0'
          continue
        }
        failures++
        reading.failed(error)
        await pause(backoffMs(failures))
      }
    }
    groupReady.resolve()
    await leaveGroup()
  }

  async function createGroup(): Promise<void> {
    try {
      // From the start of the stream: commands sent before any consumer ran are applied, not skipped.
      await until(writer.xgroup('CREATE', stream, group, '0', 'MKSTREAM'))
    } catch (error) {
      if (errorCode(error) !== 'BUSYGROUP') throw error
    }
  }

  async function readNew(): Promise<void> {
    if (signal.aborted) return
    const reply = (await until(
      reader.xreadgroup('GROUP', group, consumer, 'COUNT', 100, 'BLOCK', options.blockMs, 'STREAMS', stream, '>'),
    )) as [stream: string, entries: Entry[]][] | null
    for (const entry of reply?.[0]?.[1] ?? []) {
      if (signal.aborted) return
      await handle(entry, 1)
    }
  }

  /** Entries whose consumer failed, died, or restarted under another name. */
  async function takeOverStale(): Promise<void> {
    const reply = await until(
      writer.xautoclaim(stream, group, consumer, options.claimIdleMs, claimCursor, 'COUNT', 100),
    )
    const [next, entries] = reply as [cursor: string, entries: Entry[]]
    claimCursor = next
    for (const entry of entries) {
      if (signal.aborted) return
      const [pending] = (await until(writer.xpending(stream, group, entry[0], entry[0], 1))) as [
        [string, string, number, number]?,
      ]
      await handle(entry, pending?.[3] ?? 1)
    }
  }

  async function handle([id, fields]: Entry, deliveries: number): Promise<void> {
    // Redis before 7 hands out entries deleted from the stream with no fields: nothing to apply.
    if (fields === null) return acknowledge(id)
    const byName = fieldMap(fields)
    const message = JSON.stringify(Object.fromEntries(byName))
    const context = { source: stream, id, message, deliveries }
    const last = lastErrors.get(id)
    if (deliveries > options.maxDeliveries && !last?.outage) {
      const error = new Error(
        `Not handled in ${options.maxDeliveries} deliveries; the last error: ${last?.reason ?? 'not known here'}`,
      )
      logger.error(context, error.message)
      return deadLetter(id, error, message)
    }
    try {
      await bus.handleOnce(`${stream}:${id}`, parseCommand(byName.get('type'), byName.get('payload')))
    } catch (error) {
      logFailure(logger, error, context)
      if (isFinal(error)) return deadLetter(id, error, message)
      // Entries taken over by another process are never cleared here; the bound keeps them from piling up.
      if (lastErrors.size >= 1000) lastErrors.clear()
      lastErrors.set(id, { reason: reasonOf(error), outage: error instanceof Unavailable })
      // Whatever failed (the database, most likely) fails the next entries too: give it time to come back.
      return pause(backoffMs(++failingInARow))
    }
    failingInARow = 0
    await acknowledge(id)
  }

  async function acknowledge(id: string): Promise<void> {
    lastErrors.delete(id)
    await writer.xack(stream, group, id)
  }

  /** In one transaction, so an entry is never acknowledged without its dead letter. */
  async function deadLetter(id: string, error: unknown, message: string): Promise<void> {
    lastErrors.delete(id)
    const letter = deadLetterArgs({ source: stream, id, reason: reasonOf(error), message })
    await execOrThrow(
      writer
        .multi()
        .xadd(options.deadLetter, ...letter)
        .xack(stream, group, id),
    )
    options.metrics?.deadLettered()
  }

  /**
   * Consumer names are per process, so they would pile up in the group: leave, unless entries wait on us.
   * A courtesy, so bounded: a Redis that accepts and never answers must not hold up the process's exit.
   */
  async function leaveGroup(): Promise<void> {
    if (writer.status !== 'ready') return
    const leave = (async () => {
      const mine = await writer.xpending(stream, group, '-', '+', 1, consumer)
      if (mine.length === 0) await writer.xgroup('DELCONSUMER', stream, group, consumer)
    })().catch((error: unknown) => logger.debug({ err: error, stream, consumer }, 'could not leave the consumer group'))
    await Promise.race([leave, sleep(LEAVE_WITHIN_MS, undefined, { ref: false })])
  }

  return { groupReady: groupReady.promise, done: run() }
}

export type DeadLetter = Readonly<{ source: string; id?: string; reason: string; message: string }>

/** What follows `XADD <dead-letter stream>`; trimmed, so a flood of bad messages cannot fill Redis. */
export function deadLetterArgs(letter: DeadLetter): (string | number)[] {
  return ['MAXLEN', '~', 100_000, '*', ...Object.entries(letter).flat()]
}

/** Malformed messages and business refusals: failures no retry can turn into a success. */
export function isFinal(error: unknown): boolean {
  return error instanceof MalformedMessage || refusals.some((refusal) => error instanceof refusal)
}

export function logFailure(logger: Logger, error: unknown, context: object): void {
  if (isFinal(error)) logger.warn({ ...context, reason: reasonOf(error) }, 'message not applied')
  else logger.error({ ...context, err: error }, 'command failed')
}

export function reasonOf(error: unknown): string {
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
