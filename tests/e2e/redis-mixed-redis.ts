import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { redisUrl } from '../support/redis.ts'

/** The contract's names are fixed: the test takes a Redis logical database of its own (pub/sub is server-wide). */
export const COMMANDS = 'allocation:commands'
export const GROUP = 'allocation'
export const DEAD_LETTER = 'allocation:dead-letter'
export const EVENTS = 'allocation:events'
export const CHANNEL = 'change_batch_quantity'
export const LINE_ALLOCATED = 'line_allocated'
/** The lease of the process that listens to the channel (the service's own name for it). */
export const LEASE = 'allocation:channel-lease:change_batch_quantity'
export const CLAIM = 'allocation-test:claimed-by'

/** A logical database nobody else holds: the first of 1-15, from a random one, that is empty and claimed. */
export async function claimRedisDatabase(): Promise<{ url: string; redis: Redis; release(): Promise<void> }> {
  const token = randomUUID()
  const first = Math.floor(Math.random() * 15)
  for (let i = 0; i < 15; i++) {
    const url = new URL(redisUrl)
    url.pathname = `/${1 + ((first + i) % 15)}`
    const redis = new Redis(url.toString(), { lazyConnect: true })
    if ((await redis.set(CLAIM, token, 'EX', 600, 'NX')) === 'OK') {
      if ((await redis.dbsize()) === 1) {
        const release = async () => void (await redis.del(COMMANDS, DEAD_LETTER, EVENTS, LEASE, CLAIM))
        return { url: url.toString(), redis, release }
      }
      await redis.del(CLAIM)
    }
    redis.disconnect()
  }
  throw new Error('No Redis logical database (1-15) is free and empty to run this test in')
}

export function fieldsOf(fields: string[]): Record<string, string> {
  const record: Record<string, string> = {}
  // The first of a repeated name wins, as the consumer reads it.
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] ??= fields[i + 1] as string
  return record
}

export function groupBy<T>(items: readonly T[], keyOf: (item: T) => string | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) groups.set(keyOf(item) ?? '', [...(groups.get(keyOf(item) ?? '') ?? []), item])
  return groups
}

export function parsed(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
