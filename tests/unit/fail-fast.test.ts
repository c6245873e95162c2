import { describe, expect, it } from 'vitest'
import { FailFast } from '../../src/service-layer/fail-fast.ts'
import { Unavailable } from '../../src/service-layer/ports.ts'
import { FakeLogger } from './fakes.ts'

const down = async (): Promise<never> => {
  throw new Error('Command timed out')
}

describe('FailFast', () => {
  it('refuses at once for a while after a failure, without calling the dependency, then tries again', async () => {
    let now = 0
    let calls = 0
    const failFast = new FailFast('Redis', 5000, { logger: new FakeLogger(), now: () => now })
    const counted = async () => {
      calls++
      return down()
    }
    await expect(failFast.run(counted)).rejects.toThrow('Command timed out')
    now = 4999
    await expect(failFast.run(counted)).rejects.toThrow(Unavailable)
    expect(calls).toBe(1)
    now = 5000
    await expect(failFast.run(async () => 'sent')).resolves.toBe('sent')
    // A success leaves it open to every call.
    await expect(failFast.run(async () => 'sent again')).resolves.toBe('sent again')
  })

  it('logs an outage once, naming the dependency, reminds at most once a minute, and says when it is over', async () => {
    let now = 0
    const logger = new FakeLogger()
    const failFast = new FailFast('Publishing to Redis', 5000, { logger, now: () => now })
    // Down for 2 minutes: a call every second, refused at once inside each window, tried again after it.
    for (; now <= 120_000; now += 1000) await failFast.run(down).catch(() => {})
    now = 125_000
    await failFast.run(async () => 'published')
    await failFast.run(async () => 'published')

    expect(logger.lines.map(({ level, msg }) => [level, msg])).toEqual([
      ['error', 'Publishing to Redis failed'],
      ['warn', 'Publishing to Redis still failing: 13 failures in 1 min'],
      ['warn', 'Publishing to Redis still failing: 25 failures in 2 min'],
      ['info', 'Publishing to Redis works again, after failing for 2 min 5 s (25 failures)'],
    ])
    expect(logger.lines[0]?.obj).toEqual({ err: new Error('Command timed out') })
  })

  it('says it works again once per outage, on the first success after a failure', async () => {
    let now = 0
    let recovered = 0
    const failFast = new FailFast('The mail server', 30_000, {
      logger: new FakeLogger(),
      onRecovered: () => recovered++,
      now: () => now,
    })
    await failFast.run(async () => 'sent')
    expect(recovered).toBe(0)
    await failFast.run(down).catch(() => {})
    now = 10_000
    await failFast.run(async () => 'refused').catch(() => {})
    expect(recovered).toBe(0)
    now = 30_000
    await failFast.run(async () => 'sent')
    await failFast.run(async () => 'sent')
    expect(recovered).toBe(1)
  })
})
