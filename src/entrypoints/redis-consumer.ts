import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { abandonOnAbort, createRedisClient } from '../adapters/redis-connection.ts'
import type { MessageBus } from '../service-layer/message-bus.ts'
import { OutageLog } from '../service-layer/outage-log.ts'
import type { Logger, Metrics } from '../service-layer/ports.ts'
import { parseBatchQuantityMessage } from './command-schemas.ts'
import { consumeCommandStream, deadLetterArgs, logFailure, reasonOf } from './redis-command-stream.ts'

/** Where commands come from; the defaults are the contract other services rely on. */
export type CommandKeys = Readonly<{
  /** Stream of entries with fields `type` and `payload` (JSON of the command's fields). */
  commands: string
  /** The consumer group every process of this service reads `commands` with. */
  group: string
  /**
   * What was not applied, with fields `source` (stream or channel), `reason`, `message` (the raw text, or an
   * entry's fields as a JSON object) and, for a stream entry, its `id`.
   */
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
  /** This process's name in the group (default `<hostname>-<pid>`); its connections are named after it. */
  consumerName?: string
  /** How long one read waits for new entries (default 1000 ms). */
  blockMs?: number
  /** An entry handed out this long ago (ms) and still not acknowledged is taken over (default 30 s). */
  claimIdleMs?: number
  /** Deliveries of an entry that keeps failing before it goes to the dead-letter stream (default 5). */
  maxDeliveries?: number
  /** Counts the messages set aside. */
  metrics?: Metrics
}>

export type RedisConsumer = Readonly<{
  /** Resolves once subscribed with the group in place (retrying until Redis answers), or once stopped. */
  ready: Promise<void>
  /** Finishes the message in hand, then closes the connections. */
  stop(): Promise<void>
}>

/**
 * Applies the commands other services send through Redis: the book's `change_batch_quantity` channel
 * (at most once, as pub/sub delivers) and the `allocation:commands` stream (at least once, applied once).
 * Connects lazily and reconnects for as long as it runs; nothing it receives can crash it.
 */
export function startRedisConsumer(options: RedisConsumerOptions): RedisConsumer {
  const { bus, logger, redisUrl } = options
  const keys: CommandKeys = { ...defaultCommandKeys, ...options.keys }
  const consumer = options.consumerName ?? `${hostname()}-${process.pid}`
  const name = `allocation-consumer:${consumer}`.replaceAll(/[^\w.:-]/g, '_')
  const blockMs = options.blockMs ?? 1000
  const client = (role: string) =>
    createRedisClient(redisUrl, { name: `${name}:${role}`, logger, socketTimeoutMs: blockMs + 10_000 })
  // A subscribed connection can do nothing else, and a blocked reader nothing until its read ends.
  const [subscriber, reader, writer] = [client('subscriber'), client('reader'), client('writer')]
  const stopping = new AbortController()
  const until = abandonOnAbort(stopping.signal)
  let stopped: Promise<void> | undefined
  // Channel messages are applied one at a time, in the order they were published.
  let inLine = Promise.resolve()

  subscriber.on('message', (_channel: string, text: string) => {
    inLine = inLine.then(() => onBatchQuantity(text))
  })
  const subscribed = subscribe()
  const commands = consumeCommandStream({
    bus,
    logger,
    reader,
    writer,
    stream: keys.commands,
    group: keys.group,
    consumer,
    deadLetter: keys.deadLetter,
    blockMs,
    claimIdleMs: options.claimIdleMs ?? 30_000,
    maxDeliveries: options.maxDeliveries ?? 5,
    signal: stopping.signal,
    ...(options.metrics && { metrics: options.metrics }),
  })

  /** ioredis subscribes again by itself after a reconnection, but not when the first attempt failed. */
  async function subscribe(): Promise<void> {
    const subscribing = new OutageLog(logger, `subscribing to the Redis channel ${keys.changeBatchQuantity}`)
    for (let attempt = 1; !stopping.signal.aborted; attempt++) {
      try {
        await until(subscriber.subscribe(keys.changeBatchQuantity))
        subscribing.succeeded()
        return
      } catch (error) {
        if (stopping.signal.aborted) return
        subscribing.failed(error)
        await sleep(Math.min(100 * 2 ** attempt, 5000), undefined, { signal: stopping.signal }).catch(() => {})
      }
    }
  }

  async function onBatchQuantity(text: string): Promise<void> {
    const source = keys.changeBatchQuantity
    try {
      await bus.handle(parseBatchQuantityMessage(text))
    } catch (error) {
      // Pub/sub delivers at most once: whatever failed is kept where someone can see it and send it again.
      logFailure(logger, error, { source, message: text })
      try {
        await writer.xadd(keys.deadLetter, ...deadLetterArgs({ source, reason: reasonOf(error), message: text }))
        options.metrics?.deadLettered()
      } catch (lost) {
        logger.error({ err: lost, source, message: text }, 'could not dead-letter a message; it is lost')
      }
    }
  }

  return {
    ready: Promise.all([subscribed, commands.groupReady]).then(() => {}),
    stop() {
      stopped ??= (async () => {
        stopping.abort()
        subscriber.disconnect()
        // Ends a read that is waiting; entries it was handing out stay pending and are taken over later.
        reader.disconnect()
        await Promise.all([inLine, commands.done, subscribed])
        writer.disconnect()
      })()
      return stopped
    },
  }
}
