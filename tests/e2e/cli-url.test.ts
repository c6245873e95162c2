import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomSku } from '../support/random-refs.ts'
import { client, pgliteMode, type StorageMode, serviceRunningOn, storageModes } from './support.ts'

const run = promisify(execFile)

/** Runs the command line with no database settings of its own, so that everything goes through a URL. */
async function cli(dir: string, env: Record<string, string>, ...args: string[]) {
  const { DATABASE_URL: _url, DATA_DIR: _dir, ...inherited } = process.env
  try {
    const { stdout, stderr } = await run(process.execPath, ['src/main.ts', ...args], {
      env: { ...inherited, DATA_DIR: join(dir, 'never-used'), LOG_LEVEL: 'warn', ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string }
    return { code, stdout, stderr }
  }
}

/** The command line working through a running service's HTTP API: the server is never stopped to import. */
describe.each(await storageModes())('the command line with --url ($name)', (mode: StorageMode) => {
  const running = serviceRunningOn(mode)
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'allocation-cli-url-'))
  })
  afterAll(async () => rm(dir, { recursive: true, force: true }))

  const command = (env: Record<string, string>, ...args: string[]) => cli(dir, env, ...args)

  it('imports a file into the running service, and again without changing anything', async () => {
    const sku = randomSku('import')
    const rows = Array.from(
      { length: 2500 },
      (_, i) => `${sku}-b${i},${sku},${10 + (i % 7)},${i % 2 ? '2027-03-01' : ''}`,
    )
    const file = join(dir, 'batches.csv')
    await writeFile(file, `ref,sku,qty,eta\n${rows.join('\n')}\n`)

    const first = await command({}, '--url', running().url, 'import-batches', file)
    expect(first.stderr).toBe('')
    expect(first).toMatchObject({ code: 0 })
    expect(first.stdout).toMatch(/^2500 batches added, 0 already there \(2500 rows in [\d.]+ s, \d+ rows\/s\)\n$/)
    const stock = await client(running().url).get(`/products/${sku}`)
    expect(stock.body.batches).toHaveLength(2500)
    expect(stock.body.totals.purchased).toBe(rows.reduce((n, row) => n + Number(row.split(',')[2]), 0))

    const events = (await client(running().url).get('/events?after=0&limit=1')).body.next
    const again = await command({ ALLOCATION_URL: running().url }, 'import-batches', file)
    expect(again).toMatchObject({ code: 0 })
    expect(again.stdout).toMatch(/^0 batches added, 2500 already there /)
    expect((await client(running().url).get(`/products/${sku}`)).body.totals).toEqual(stock.body.totals)
    expect((await client(running().url).get('/events?after=0&limit=1')).body.next).toBe(events)
  })

  it('reports a bad row by line and column, and writes nothing of its chunk', async () => {
    const [good, other] = [randomSku('good'), randomSku('other')]
    const rows = Array.from({ length: 1500 }, (_, i) => `${good}-b${i},${good},5,`)
    rows[1200] = `${good}-bad,${good},5,2027-02-30`
    rows[1300] = `${good}-ctl,${other}\u0001x,5,`
    const file = join(dir, 'bad.csv')
    await writeFile(file, `ref,sku,qty,eta\n${rows.join('\n')}\n`)

    const answer = await command({ ALLOCATION_URL: running().url }, 'import-batches', file)
    expect(answer.code).toBe(1)
    expect(answer.stderr).toContain(
      'Line 1202, column 4 (eta): must be a real calendar date written YYYY-MM-DD, not "2027-02-30"\n',
    )
    expect(answer.stderr).toContain(
      'Line 1302, column 2 (sku): must not contain control characters or unpaired surrogates',
    )
    // The first chunk (rows 1 to 1000) is written; the second, with the bad rows, is not.
    expect(answer.stdout).toMatch(/^1000 batches added, 0 already there, 500 not written \(chunks with 2 bad rows\)/)
    expect((await client(running().url).get(`/products/${good}`)).body.batches).toHaveLength(1000)

    // A row that conflicts with a stored batch is found by the service; the answer names its place.
    const conflicting = join(dir, 'conflicting.csv')
    await writeFile(conflicting, `ref,sku,qty,eta\n${good}-new,${good},5,\n${good}-b0,${good},6,\n`)
    const refused = await command({ ALLOCATION_URL: running().url }, 'import-batches', conflicting)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(
      `Line 3, column 1 (ref): Batch ${good}-b0 already exists with another sku, qty or eta`,
    )
    expect(refused.stdout).toMatch(/^0 batches added, 0 already there, 2 not written \(chunks with 1 bad row\)/)
    expect((await client(running().url).get(`/batches/${good}-new`)).status).toBe(404)
  })
})

const SECRET = 'cli-test-secret-0123456789'

// The other commands do not depend on the storage: one mode is enough. This service asks for a key.
describe('the command line with --url and API_KEY, beyond imports', () => {
  const running = serviceRunningOn(pgliteMode, { API_KEYS: `clerk:write:${SECRET}` })
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'allocation-cli-url-'))
  })
  afterAll(async () => rm(dir, { recursive: true, force: true }))

  const command = (env: Record<string, string>, ...args: string[]) => cli(dir, env, ...args)

  it('adds, allocates, shows and changes stock through the API, with exit codes as without --url', async () => {
    const sku = randomSku('desk')
    const env = { ALLOCATION_URL: running().url, API_KEY: SECRET }
    expect(await command(env, 'add-batch', `${sku}-b1`, sku, '5')).toMatchObject({
      code: 0,
      stdout: `Added batch ${sku}-b1\n`,
    })
    expect((await command(env, 'add-batch', `${sku}-b1`, sku, '6')).code).toBe(1)
    expect((await command(env, 'add-batch', `${sku}-b2`, sku, '0')).code).toBe(2)
    expect((await command(env, 'allocate', 'order-1', sku, '3')).stdout).toBe(
      `Allocated 3 of ${sku} for order order-1 from batch ${sku}-b1\n`,
    )
    expect(await command(env, 'allocate', 'order-2', sku, '9')).toMatchObject({ code: 3 })
    expect((await command(env, 'allocate', 'order-2', sku, '9', '--backorder')).stdout).toBe(
      `Backordered 9 of ${sku} for order order-2\n`,
    )
    expect((await command(env, 'set-eta', `${sku}-b1`, '2027-04-01')).stdout).toBe(
      `Batch ${sku}-b1 now arrives 2027-04-01\n`,
    )
    expect(await command(env, 'set-eta', 'b-nowhere', 'arrived')).toMatchObject({
      code: 4,
      stderr: 'There is no batch b-nowhere\n',
    })
    expect((await command(env, 'stock', sku)).stdout).toContain('Total: 5 purchased, 3 allocated, 2 available')
    expect((await command(env, 'order', 'order-2')).stdout).toMatch(/backordered/)
    expect(await command(env, 'order', 'order-none')).toMatchObject({
      code: 4,
      stderr: 'Order order-none has no lines\n',
    })
    expect(await command(env, 'stock', `${sku}-none`)).toMatchObject({ code: 4 })
    expect(await command(env, 'allocate', 'order-3', `${sku}-none`, '1')).toMatchObject({ code: 4 })
    expect(await command(env, 'allocate', 'order-3', sku, '1', '--hold', '60', '--backorder')).toMatchObject({
      code: 2,
    })
  })

  it('says when the URL is not the service, rather than that the order or sku is unknown', async () => {
    const env = { ALLOCATION_URL: `${running().url}/api`, API_KEY: SECRET }
    expect(await command(env, 'order', 'o-1')).toMatchObject({
      code: 1,
      stderr: `There is no route GET /orders/o-1 at ${running().url}/api; is it the service's URL?\n`,
    })
    expect(await command(env, 'stock', 'LAMP')).toMatchObject({
      code: 1,
      stderr: `There is no route GET /products/LAMP at ${running().url}/api; is it the service's URL?\n`,
    })
  })

  it('says so when the key is missing or wrong', async () => {
    const url = running().url
    expect(await command({ ALLOCATION_URL: url, API_KEY: 'not-the-secret-at-all' }, 'stock', 'x')).toMatchObject({
      code: 1,
      stderr: `The service at ${url} does not accept the API key in API_KEY\n`,
    })
    expect(await command({ ALLOCATION_URL: url }, 'stock', 'x')).toMatchObject({
      code: 1,
      stderr: `The service at ${url} asks for an API key: set API_KEY to one of its keys\n`,
    })
  })

  it('says in one line when the service cannot be reached', async () => {
    const answer = await command({ ALLOCATION_URL: 'http://127.0.0.1:9' }, 'stock', 'x')
    expect(answer.code).toBe(1)
    expect(answer.stderr).toMatch(/^The service at http:\/\/127\.0\.0\.1:9 cannot be reached: .+\n$/)
  })
})
