import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDataDir } from '../support/servers.ts'

const run = promisify(execFile)

describe('the allocation command line (embedded database)', () => {
  let dataDir: { dir: string; drop: () => Promise<void> }
  const cli = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, ['src/main.ts', ...args], {
        env: { ...process.env, DATA_DIR: dataDir.dir, DATABASE_URL: '', LOG_LEVEL: 'warn' },
      })
      return { code: 0, stdout, stderr }
    } catch (error) {
      const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string }
      return { code, stdout, stderr }
    }
  }

  beforeAll(async () => {
    dataDir = await createDataDir()
  })
  afterAll(async () => dataDir.drop())

  it('adds batches, imports a CSV, allocates and shows the stock', async () => {
    expect(await cli('add-batch', 'b-warehouse', 'LAMP', '10')).toMatchObject({
      code: 0,
      stdout: 'Added batch b-warehouse\n',
    })
    const csv = join(dataDir.dir, 'batches.csv')
    await writeFile(csv, 'ref,sku,qty,eta\nb-ship,LAMP,20,2027-01-15\nb-bad,LAMP,0,\nb-warehouse,LAMP,10,\n')
    const refused = await cli('import-batches', csv)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('Line 3, column 3 (qty): must be at least 1, not "0"')
    expect(refused.stdout).toMatch(/^0 batches added, 0 already there, 3 not written \(chunks with 1 bad rows\)/)
    // Nothing of the bad row's chunk was written; corrected, the file goes in.
    await writeFile(csv, 'ref,sku,qty,eta\nb-ship,LAMP,20,2027-01-15\nb-warehouse,LAMP,10,\n')
    const imported = await cli('import-batches', csv)
    expect(imported.code).toBe(0)
    expect(imported.stdout).toMatch(/^1 batches added, 1 already there \(2 rows in [\d.]+ s, \d+ rows\/s\)\n$/)

    expect((await cli('allocate', 'order-1', 'LAMP', '12')).stdout).toBe(
      'Allocated 12 of LAMP for order order-1 from batch b-ship\n',
    )
    const stock = await cli('stock', 'LAMP')
    expect(stock.stdout).toContain('Total: 30 purchased, 12 allocated, 18 available')
    expect(stock.stdout.indexOf('b-warehouse')).toBeLessThan(stock.stdout.indexOf('b-ship'))
  })

  it('refuses a CSV row whose id holds a control character, and writes nothing of its chunk', async () => {
    const csv = join(dataDir.dir, 'control.csv')
    await writeFile(csv, 'ref,sku,qty,eta\nb-nul\u0000x,STOOL,5,\nb-esc,STO\u001bOL,5,\nb-fine,STOOL,5,\n')
    const imported = await cli('import-batches', csv)
    expect(imported.code).toBe(1)
    expect(imported.stdout).toMatch(/^0 batches added, 0 already there, 3 not written \(chunks with 2 bad rows\)/)
    expect(imported.stderr).toContain(
      'Line 2, column 1 (ref): must not contain control characters or unpaired surrogates',
    )
    expect(imported.stderr).toContain(
      'Line 3, column 2 (sku): must not contain control characters or unpaired surrogates',
    )
  })

  // b-ship, the shipment of LAMP added above.
  it('changes a batch eta with set-eta: a date when a shipment slips, arrived when it is in', async () => {
    expect(await cli('set-eta', 'b-ship', '2027-02-10')).toMatchObject({
      code: 0,
      stdout: 'Batch b-ship now arrives 2027-02-10\n',
    })
    expect(await cli('set-eta', 'b-ship', 'arrived')).toMatchObject({ code: 0, stdout: 'Batch b-ship has arrived\n' })
    const bad = await cli('set-eta', 'b-ship', '2027-02-30')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/Invalid eta: .*eta/)
    const unknown = await cli('set-eta', 'b-nowhere', 'arrived')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('There is no batch b-nowhere')
    const stock = await cli('stock', 'LAMP')
    expect(stock.stdout).toMatch(/b-ship\W+warehouse/)
  }, 120_000)

  it('refuses bad input with a sentence and exit code 2', async () => {
    const bad = await cli('add-batch', 'b-x', 'LAMP', '1.5', '--eta', '2026-02-30')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/Invalid batch: .*qty.*eta|Invalid batch: .*eta.*qty/)
  })

  it('says out of stock with exit code 3', async () => {
    const answer = await cli('allocate', 'order-2', 'LAMP', '1000')
    expect(answer).toMatchObject({ code: 3, stdout: 'Out of stock: no batch of LAMP can take 1000\n' })
  })

  it('backorders, holds, and shows an order with each line in its state', async () => {
    await cli('add-batch', 'b-desk', 'DESK', '5')
    expect((await cli('allocate', 'order-3', 'DESK', '3', '--hold', '600')).stdout).toMatch(
      /^Held 3 of DESK for order order-3 on batch b-desk until \d{4}-\d\d-\d\dT/,
    )
    expect((await cli('allocate', 'order-3', 'DESK', '3', '--hold', '0')).code).toBe(2)
    await cli('add-batch', 'b-chair', 'CHAIR', '1', '--eta', '2027-02-01')
    expect((await cli('allocate', 'order-3', 'CHAIR', '4', '--backorder')).stdout).toBe(
      'Backordered 4 of CHAIR for order order-3\n',
    )
    const order = await cli('order', 'order-3')
    expect(order.code).toBe(0)
    expect(order.stdout).toMatch(/DESK.*held.*b-desk.*warehouse/)
    expect(order.stdout).toMatch(/CHAIR.*backordered/)
    expect(await cli('order', 'order-none')).toMatchObject({ code: 2, stderr: 'Order order-none has no lines\n' })
  }, 120_000)
})
