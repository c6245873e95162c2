import { afterAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { createDataDir } from '../support/servers.ts'
import { client, runFailingService, startService } from './support.ts'

describe('the service process', () => {
  const drops: Array<() => Promise<void>> = []
  afterAll(async () => {
    for (const drop of drops) await drop()
  })

  it('keeps its PGlite data across a restart on the same DATA_DIR', async () => {
    const { dir, drop } = await createDataDir()
    drops.push(drop)
    const [ref, sku, orderid] = [randomBatchref(), randomSku(), randomOrderid()]

    const first = await startService({ DATA_DIR: dir })
    expect(first.output()).toContain(`PGlite in ${dir}`)
    const api = client(first.url)
    expect((await api.post('/batches', { ref, sku, qty: 10, eta: null })).status).toBe(201)
    expect((await api.post('/allocations', { orderid, sku, qty: 3 })).status).toBe(201)
    expect(await first.stop(), first.output()).toBe(0)

    const second = await startService({ DATA_DIR: dir })
    try {
      const again = client(second.url)
      expect((await again.get(`/batches/${ref}`)).body).toEqual({
        ref,
        sku,
        eta: null,
        purchased: 10,
        allocated: 3,
        available: 7,
      })
      expect((await again.get(`/allocations/${orderid}`)).body).toEqual([{ sku, batchref: ref }])
    } finally {
      expect(await second.stop(), second.output()).toBe(0)
    }
  })

  it('logs one line saying where it listens, on which database, and where the docs are', async () => {
    const { dir, drop } = await createDataDir()
    drops.push(drop)
    const service = await startService({ DATA_DIR: dir })
    await service.stop()
    const lines = service
      .output()
      .split('\n')
      .filter((line) => line.includes('listening'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain(`${service.url}/docs`)
    expect(lines[0]).toContain(dir)
  })

  it('exits with 1 and says why when it cannot start', async () => {
    const { code, output } = await runFailingService({ PORT: 'nope' })
    expect(code).toBe(1)
    expect(output).toContain('PORT must be a non-negative integer')
  })
})
