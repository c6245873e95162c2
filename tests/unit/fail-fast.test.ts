import { describe, expect, it } from 'vitest'
import { FailFast } from '../../src/service-layer/fail-fast.ts'
import { Unavailable } from '../../src/service-layer/ports.ts'

describe('FailFast', () => {
  it('refuses at once for a while after a failure, without calling the dependency, then tries again', async () => {
    let now = 0
    let calls = 0
    const failFast = new FailFast('Redis', 5000, () => now)
    const down = async () => {
      calls++
      throw new Error('Command timed out')
    }
    await expect(failFast.run(down)).rejects.toThrow('Command timed out')
    now = 4999
    await expect(failFast.run(down)).rejects.toThrow(Unavailable)
    expect(calls).toBe(1)
    now = 5000
    await expect(failFast.run(async () => 'sent')).resolves.toBe('sent')
    // A success leaves it open to every call.
    await expect(failFast.run(async () => 'sent again')).resolves.toBe('sent again')
  })
})
