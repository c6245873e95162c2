import { type ChainableCommander, Redis } from 'ioredis'
import { duration } from '../service-layer/outage-log.ts'
import type { Logger } from '../service-layer/ports.ts'

export type RedisClientOptions = Readonly<{
  /** Says once when the connection drops and once when it is back (without it, ioredis prints to stderr). */
  logger?: Logger
  /** Shown by `CLIENT LIST` and in the logs, so an operator can tell the connections apart. */
  name?: string
  /**
   * Fail a command that has no answer after this long. Set it where a caller waits in line (publishing from
   * a request), so a Redis outage fails one delivery, retried later from the outbox, instead of the request.
   */
  commandTimeoutMs?: number
  /**
   * Drop the connection, and reconnect, when an answer is this late: a connection that died without a word
   * (a network partition) would otherwise leave a command waiting for ever. Longer than any blocking read.
   */
  socketTimeoutMs?: number
}>

/**
 * A client that connects on its first command, never before, and after a drop reconnects for as long as
 * it lives, waiting at most 2 s between attempts. A command fails after one failed reconnection instead
 * of queueing without bound; callers retry.
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): Redis {
  const { logger, name } = options
  const client = new Redis(url, {
    lazyConnect: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    maxRetriesPerRequest: 1,
    ...(name === undefined ? {} : { connectionName: name }),
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
    ...(options.socketTimeoutMs === undefined ? {} : { socketTimeout: options.socketTimeoutMs }),
  })
  let downSince: number | null = null
  client.on('error', (error: Error) => {
    connectionFailures.set(client, error)
    if (downSince === null) logger?.warn({ err: error, redis: name }, 'Redis connection failed; reconnecting')
    downSince ??= Date.now()
  })
  client.on('reconnecting', () => {
    if (downSince === null) logger?.warn({ redis: name }, 'lost the connection to Redis; reconnecting')
    downSince ??= Date.now()
  })
  client.on('ready', () => {
    connectionFailures.delete(client)
    if (downSince !== null) {
      const downForMs = Date.now() - downSince
      logger?.info({ redis: name, downForMs }, `connected to Redis again, after ${duration(downForMs)}`)
    }
    downSince = null
  })
  return client
}

/** Why each client's last attempt to connect failed, until it connects. */
const connectionFailures = new WeakMap<Redis, Error>()

/**
 * `ok` when Redis answers a PING, otherwise why not. A client waiting to connect again after a failure
 * answers at once with that failure: its PING would wait for the next attempt, past any readiness bound.
 */
export async function redisCheck(client: Redis): Promise<string> {
  const failure = connectionFailures.get(client)
  if (failure && client.status === 'reconnecting') return connectionFailed(failure)
  try {
    await client.ping()
    return 'ok'
  } catch (error) {
    const failed = connectionFailures.get(client)
    return failed ? connectionFailed(failed) : `not answering: ${(error as Error).message}`
  }
}

function connectionFailed(error: Error): string {
  const { code } = error as NodeJS.ErrnoException
  if (code === 'ECONNREFUSED') return 'Redis refused the connection (ECONNREFUSED)'
  return `the connection to Redis failed: ${error.message}`
}

/** Runs a MULTI; a command that failed inside it fails the whole call, as it would outside one. */
export async function execOrThrow(transaction: ChainableCommander): Promise<unknown[]> {
  const results = await transaction.exec()
  if (!results) throw new Error('A Redis transaction was aborted')
  const failure = results.find(([error]) => error)?.[0]
  if (failure) throw failure
  return results.map(([, result]) => result)
}

/**
 * Wraps commands so that they give up when `signal` aborts. ioredis leaves a command queued for ever when
 * its client is disconnected while waiting to reconnect, so whoever stops must not wait for one.
 */
export function abandonOnAbort(signal: AbortSignal): <T>(command: Promise<T>) => Promise<T> {
  const aborted = new Promise<never>((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason)
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
  aborted.catch(() => {})
  return (command) => Promise.race([command, aborted])
}
