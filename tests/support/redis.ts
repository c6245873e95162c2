import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { serverAvailable } from './servers.ts'

/** The Redis server the tests share; each test names its streams and channels with `uniqueKeys()`. */
export const redisUrl = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

export function redisAvailable(): Promise<boolean> {
  return serverAvailable('Redis', async () => {
    const redis = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 2000, retryStrategy: () => null })
    let cause: unknown
    redis.on('error', (error) => {
      cause ??= error
    })
    try {
      await redis.connect()
      await redis.ping()
    } catch (error) {
      throw cause ?? error
    } finally {
      redis.disconnect()
    }
  })
}

/** A client for the test's own commands; never connected to before its first one. */
export function testClient(): Redis {
  return new Redis(redisUrl, { lazyConnect: true })
}

/** The contract's names under a prefix no other test uses, so test files never see each other's messages. */
export function uniqueKeys<const K extends Record<string, string>>(names: K): K {
  const prefix = `test-${randomUUID()}`
  return Object.fromEntries(Object.entries(names).map(([key, name]) => [key, `${prefix}:${name}`])) as K
}
