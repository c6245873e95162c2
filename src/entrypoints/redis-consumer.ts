import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import { abandonOnAbort, createRedisClient } from '../adapters/redis-connection.ts'
import { holdLease } from '../adapters/redis-lease.ts'
import type { MessageBus } from '../service-layer/message-bus.ts'
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
  /**
   * The book's pub/sub channel, `{"batchref", "qty"}`. Pub/sub hands each message to every subscriber, so
   * only the process holding the lease `channelLeaseKey(keys)` subscribes.
   */
  changeBatchQuantity: string
}>

export const defaultCommandKeys: CommandKeys = {
  commands: 'allocation:commands',
  group: 'allocation',
  deadLetter: 'allocation:dead-letter',
  changeBatchQuantity: 'change_batch_quantity',
}

/** The key of the lease on the channel, one per deployment (`group`) and channel, in Redis's logical database. */
export function channelLeaseKey(keys: CommandKeys): string {
  return `${keys.group}:channel-lease:${keys.changeBatchQuantity}`
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
  /**
   * How long the channel's lease lasts unless its holder renews it (default 5000 ms): a process that dies
   * holding it leaves the channel unheard this long.
   */
  leaseMs?: number
  /** Counts the messages set aside. */
  metrics?: Metrics
}>

export type RedisConsumer = Readonly<{
  /**
   * Resolves once the group is in place and the channel's lease was asked for, subscribed when taken
   * (retrying until Redis answers), or once stopped.
   */
  ready: Promise<void>
  /** Finishes the messages in hand, gives the channel's lease up, then closes the connections. */
  stop(): Promise<void>
}>

/**
 * Applies the commands other services send through Redis: the book's `change_batch_quantity` channel
 * (at most once, as pub/sub delivers) and the `allocation:commands` stream (at least once, applied once).
 * Of all the processes of a deployment, one at a time listens to the channel: the holder of its lease.
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
  // A blocked reader can do nothing until its read ends; a subscribed connection nothing else at all.
  const [reader, writer] = [client('reader'), client('writer')]
  const stopping = new AbortController()
  const until = abandonOnAbort(stopping.signal)
  let stopped: Promise<void> | undefined
  let subscriber: Redis | null = null
  /** Counts the times the lease was taken: a message is applied only in the tenure that received it. */
  let tenure = 0
  // Channel messages are applied one at a time, in the order they were published.
  let inLine = Promise.resolve()

  const lease = holdLease({
    redis: writer,
    key: channelLeaseKey(keys),
    owner: consumer,
    ttlMs: options.leaseMs ?? 5000,
    logger,
    signal: stopping.signal,
    onTaken: listen,
    onLost: stopListening,
  })
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

  /**
   * A connection of its own for each tenure, since closing it stops the messages at once, whether Redis
   * answers or not. ioredis subscribes again by itself after a reconnection.
   */
  async function listen(): Promise<void> {
    const listening = client('subscriber')
    const mine = ++tenure
    subscriber = listening
    listening.on('message', (_channel: string, text: string) => {
      inLine = inLine.then(() => (lease.held() && tenure === mine ? onBatchQuantity(text) : notHeld(text)))
    })
    await until(listening.subscribe(keys.changeBatchQuantity))
    const { changeBatchQuantity: channel } = keys
    logger.info({ channel }, `applying the messages of ${channel}: this process holds ${channelLeaseKey(keys)}`)
  }

  function stopListening(): void {
    subscriber?.disconnect()
    subscriber = null
  }

  /** Received in a tenure that ended before its turn: applied now, it could repeat or undo the next holder's. */
  async function notHeld(text: string): Promise<void> {
    logger.warn(
      { source: keys.changeBatchQuantity, message: text },
      'message not applied: this process no longer holds the channel',
    )
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
    ready: Promise.all([lease.settled, commands.groupReady]).then(() => {}),
    stop() {
      stopped ??= (async () => {
        stopping.abort()
        stopListening()
        // Ends a read that is waiting; entries it was handing out stay pending and are taken over later.
        reader.disconnect()
        // Released once the messages in hand are applied, so that the next holder's come after them.
        await Promise.all([inLine.then(lease.release), commands.done])
        writer.disconnect()
      })()
      return stopped
    },
  }
}
