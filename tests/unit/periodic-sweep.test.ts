import { describe, expect, it, vi } from 'vitest'
import { periodicSweep } from '../../src/service-layer/periodic-sweep.ts'
import { FakeLogger } from './fakes.ts'

describe('periodicSweep', () => {
  it('logs a failing sweep once, reminds at most once a minute, and says when it works again and after how long', async () => {
    const logger = new FakeLogger()
    let now = 0
    let sweeps = 0
    // A sweep a second by this clock; the database is down for the 70 first.
    const sweep = periodicSweep(
      async () => {
        sweeps++
        now += 1000
        if (sweeps <= 70) throw new Error('connect ECONNREFUSED 127.0.0.1:5432')
        return 0
      },
      { intervalMs: 0, logger, what: 'outbox sweep', now: () => now },
    )
    sweep.start()
    await vi.waitFor(() => expect(sweeps).toBeGreaterThanOrEqual(80))
    await sweep.stop()

    expect(logger.lines.map(({ level, msg }) => [level, msg])).toEqual([
      ['error', 'outbox sweep failed'],
      ['warn', 'outbox sweep still failing: 61 failures in 1 min'],
      ['info', 'outbox sweep works again, after failing for 1 min 10 s (70 failures)'],
    ])
    expect(logger.lines[0]?.obj).toEqual({ err: new Error('connect ECONNREFUSED 127.0.0.1:5432') })
    expect(logger.lines[1]?.obj).toMatchObject({ failures: 61, failingForMs: 60_000 })
    expect(logger.lines[2]?.obj).toEqual({ failures: 70, failingForMs: 70_000 })
  })
})
