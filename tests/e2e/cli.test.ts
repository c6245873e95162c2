import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDataDir } from '../support/servers.ts'
import { type RunningService, startService } from './support.ts'

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
    expect(refused.stdout).toMatch(/^0 batches added, 0 already there, 3 not written \(chunks with 1 bad row\)/)
    // Nothing of the bad row's chunk was written; corrected, the file goes in.
    await writeFile(csv, 'ref,sku,qty,eta\nb-ship,LAMP,20,2027-01-15\nb-warehouse,LAMP,10,\n')
    const imported = await cli('import-batches', csv)
    expect(imported.code).toBe(0)
    expect(imported.stdout).toMatch(/^1 batch added, 1 already there \(2 rows in [\d.]+ s, \d+ rows\/s\)\n$/)

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
    expect(await cli('set-eta', 'b-ship', 'tomorrow')).toMatchObject({
      code: 2,
      stderr: 'Invalid eta: date must be a real calendar date written YYYY-MM-DD, or arrived, not "tomorrow"\n',
    })
    expect((await cli('set-eta', 'b-ship', '2027-02-30')).stderr).toContain('not "2027-02-30"')
    expect(await cli('set-eta', 'b-nowhere', 'arrived')).toMatchObject({
      code: 4,
      stderr: 'There is no batch b-nowhere\n',
    })
    const stock = await cli('stock', 'LAMP')
    expect(stock.stdout).toMatch(/b-ship\W+warehouse/)
  }, 120_000)

  it('refuses bad input with a sentence naming the argument or option as typed, and exit code 2', async () => {
    expect(await cli('add-batch', 'b-x', 'LAMP', '1.5', '--eta', '2026-02-30')).toMatchObject({
      code: 2,
      stderr:
        'Invalid batch: qty must be an integer, not "1.5"; ' +
        '--eta must be a real calendar date written YYYY-MM-DD, not "2026-02-30"\n',
    })
    expect(await cli('add-batch', 'b-x', 'LAMP', '0')).toMatchObject({
      code: 2,
      stderr: 'Invalid batch: qty must be at least 1, not "0"\n',
    })
    expect(await cli('allocate', 'order-9', 'LAMP', '1', '--hold', '0')).toMatchObject({
      code: 2,
      stderr: 'Invalid line: --hold must be at least 1, not "0"\n',
    })
    const both = await cli('allocate', 'order-9', 'LAMP', '1', '--hold', '60', '--backorder')
    expect(both).toMatchObject({ code: 2, stderr: expect.stringContaining('a hold cannot wait for stock') })
  })

  it('says a command it does not know is unknown, and exits 2', async () => {
    const answer = await cli('frobnicate')
    expect(answer.code).toBe(2)
    expect(answer.stderr).toMatch(/^error: unknown command 'frobnicate'\n/)
    expect(answer.stderr).not.toContain("for 'serve'")
    expect(answer.stderr).not.toContain('Usage: allocation serve')
    expect((await cli('allocate', 'order-9', 'LAMP')).code).toBe(2)
  })

  it('says what it cannot find with exit code 4', async () => {
    expect(await cli('allocate', 'order-9', 'NO-SUCH-SKU', '1')).toMatchObject({
      code: 4,
      stderr: 'Invalid sku NO-SUCH-SKU\n',
    })
    expect(await cli('stock', 'NO-SUCH-SKU')).toMatchObject({ code: 4, stderr: 'There is no stock of NO-SUCH-SKU\n' })
  })

  it('says in one sentence, exit code 2, that a file to import is missing, a folder or without a header', async () => {
    const missing = join(dataDir.dir, 'nope.csv')
    expect(await cli('import-batches', missing)).toMatchObject({ code: 2, stderr: `There is no file ${missing}\n` })
    expect(await cli('import-batches', dataDir.dir)).toMatchObject({
      code: 2,
      stderr: `${dataDir.dir} is a folder; give the CSV file to import\n`,
    })
    const empty = join(dataDir.dir, 'empty.csv')
    await writeFile(empty, '')
    expect(await cli('import-batches', empty)).toMatchObject({
      code: 2,
      stdout: '',
      stderr: `${empty} has no header: its first line must name the columns ref,sku,qty,eta\n`,
    })
  })

  it('reads the header in any case, and refuses a ref given again as another batch, naming both lines', async () => {
    const csv = join(dataDir.dir, 'repeated.csv')
    await writeFile(csv, 'Ref, SKU ,Qty,ETA\nb-rug,RUG,5,\nb-rug2,RUG,5,\nb-rug,RUG,6,\n')
    const refused = await cli('import-batches', csv)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe('Line 4, column 1 (ref): b-rug is on line 2 already, as another batch\n')
    expect(refused.stdout).toMatch(/^0 batches added, 0 already there, 3 not written \(chunks with 1 bad row\)/)
  })

  it('takes the same batch twice in a file as one', async () => {
    const csv = join(dataDir.dir, 'twice.csv')
    await writeFile(csv, 'ref,sku,qty,eta\nb-mat,MAT,5,\nb-mat2,MAT,5,2027-01-01\nb-mat,MAT,5,\n')
    const imported = await cli('import-batches', csv)
    expect(imported).toMatchObject({ code: 0, stderr: '' })
    expect(imported.stdout).toMatch(/^2 batches added, 1 already there/)
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
    expect(await cli('order', 'order-none')).toMatchObject({ code: 4, stderr: 'Order order-none has no lines\n' })
  }, 120_000)
})

describe('the command line on the embedded database of a running server', () => {
  let dataDir: { dir: string; drop: () => Promise<void> }
  let server: RunningService

  beforeAll(async () => {
    dataDir = await createDataDir()
    server = await startService({ DATA_DIR: dataDir.dir })
  })
  afterAll(async () => {
    await server?.stop()
    await dataDir?.drop()
  })

  it('says in one sentence which process holds it, and that --url goes through that server', async () => {
    const { DATABASE_URL: _url, ...inherited } = process.env
    const answer = await run(process.execPath, ['src/main.ts', 'stock', 'LAMP'], {
      env: { ...inherited, DATA_DIR: dataDir.dir, LOG_LEVEL: 'warn' },
    }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      ({ code, stdout, stderr }: { code: number; stdout: string; stderr: string }) => ({ code, stdout, stderr }),
    )
    expect(answer).toMatchObject({ code: 1, stdout: '' })
    expect(answer.stderr).toMatch(
      new RegExp(`^The embedded database in .+ is in use by process ${server.pid}; stop it first.* --url http\\S+ `),
    )
    expect(answer.stderr.trimEnd().split('\n')).toHaveLength(1)
  })
})
