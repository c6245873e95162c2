import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'
import { createDatabase, defaultPostgresUrl } from './postgres.ts'
import { addBatches, batchesOf, LARGE_QTY } from './seed.ts'
import { type Service, startService } from './service.ts'

const USAGE = `npm run bench:instructions -- [options]

Counts the instructions the service runs per request under valgrind's callgrind: a figure that,
unlike seconds, does not move with the machine's speed, so two versions can be compared a minute or a
day apart. Needs valgrind (Debian's package).

  --storage <mode>        postgres (default; the service's process alone) or embedded (the service and its
                          database, which runs in the same process)
  --workload <name>       allocate (default: POST /allocations) or product-read (GET /products/{sku})
  --warmup <n>            requests before counting, so the code counted is optimised (default 15000)
  --requests <n>          requests counted (default 3000)
  --postgres <url>        server for the bench's database (default ${defaultPostgresUrl})`

const { values: args } = parseArgs({
  options: {
    storage: { type: 'string', default: 'postgres' },
    warmup: { type: 'string', default: '15000' },
    workload: { type: 'string', default: 'allocate' },
    requests: { type: 'string', default: '3000' },
    postgres: { type: 'string', default: defaultPostgresUrl },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

const SKUS = Array.from({ length: 100 }, (_, i) => `instructions-sku-${i}`)
const CONNECTIONS = 10

/** The same lines in every run: a fixed sequence of skus and quantities (fixed, not finely random). */
function* lines(): Generator<{ sku: string; qty: number }> {
  let seed = 42
  const next = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
    return seed / 2_147_483_648
  }
  for (;;) yield { sku: SKUS[Math.floor(next() * SKUS.length)] as string, qty: 1 + Math.floor(next() * 3) }
}

type Request = Readonly<{ method: 'GET' | 'POST'; path: string; body?: string }>

/** What is counted: each makes the next request of a fixed sequence, and names the answer it expects. */
const WORKLOADS = {
  /** `POST /allocations`: a new orderid each, a sku and a qty from `lines`. */
  allocate: () => {
    const source = lines()
    let orderid = 0
    return {
      expect: 201,
      next: (): Request => {
        const line = source.next().value as { sku: string; qty: number }
        return { method: 'POST', path: '/allocations', body: JSON.stringify({ orderid: `i-${orderid++}`, ...line }) }
      },
    }
  },
  /** `GET /products/{sku}` over the skus in the order of `lines`. */
  'product-read': () => {
    const source = lines()
    return {
      expect: 200,
      next: (): Request => ({ method: 'GET', path: `/products/${(source.next().value as { sku: string }).sku}` }),
    }
  },
} as const

type Workload = ReturnType<(typeof WORKLOADS)[keyof typeof WORKLOADS]>

/** Sends `count` requests over `CONNECTIONS` at once; any other answer than the one expected stops the run. */
async function drive(url: string, count: number, { next, expect }: Workload): Promise<void> {
  let left = count
  const connection = async () => {
    for (; left > 0; left--) {
      const { method, path, body } = next()
      const response = await fetch(`${url}${path}`, {
        method,
        ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body }),
      })
      const text = await response.text()
      if (response.status !== expect) throw new Error(`${method} ${path} answered ${response.status}: ${text}`)
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, connection))
}

/** Instructions counted in each thread, the main thread first: callgrind writes a file per thread. */
async function threadTotals(profile: string): Promise<number[]> {
  const dir = dirname(profile)
  const files = (await readdir(dir)).filter((name) => name.startsWith(`${basename(profile)}-`)).sort()
  if (files.length === 0) throw new Error(`callgrind wrote no ${profile}-NN`)
  return Promise.all(
    files.map(async (name) => {
      const totals = /^totals: (\d+)/m.exec(await readFile(join(dir, name), 'utf8'))
      return totals ? Number(totals[1]) : 0
    }),
  )
}

/** Turns callgrind's counting on or off in the running process. */
async function instrument(pid: number, on: boolean, env: NodeJS.ProcessEnv): Promise<void> {
  // valgrind names its control pipes after $USER and $HOST, so the control command needs the service's.
  await promisify(execFile)('callgrind_control', ['--instr', on ? 'on' : 'off', String(pid)], { env })
}

async function main(): Promise<number> {
  if (args.help) {
    console.log(USAGE)
    return 0
  }
  const storage = args.storage
  if (storage !== 'postgres' && storage !== 'embedded')
    throw new Error(`--storage is postgres or embedded, not ${storage}`)
  const warmup = Number(args.warmup)
  const counted = Number(args.requests)
  const workloadName = args.workload as keyof typeof WORKLOADS
  if (!Object.hasOwn(WORKLOADS, workloadName)) {
    throw new Error(`--workload is ${Object.keys(WORKLOADS).join(' or ')}, not ${workloadName}`)
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').toLowerCase()
  const results = fileURLToPath(new URL('./results/', import.meta.url))
  await mkdir(results, { recursive: true })
  const profile = join(results, `instructions-${stamp}.callgrind`)

  const database = storage === 'postgres' ? await createDatabase(args.postgres, 'bench_instructions', stamp) : null
  const dataDir = storage === 'embedded' ? await mkdtemp(join(tmpdir(), 'bench-instructions-')) : null
  const env: Record<string, string> = database ? { DATABASE_URL: database.url } : { DATA_DIR: dataDir ?? '' }
  const serviceEnv = { ...process.env, HOST: '127.0.0.1' }
  const wrapper = [
    'valgrind',
    '--tool=callgrind',
    '--instr-atstart=no',
    '--separate-threads=yes',
    `--callgrind-out-file=${profile}`,
  ]
  let service: Service | undefined
  try {
    service = await startService(env, { wrapper, timeoutMs: 180_000 })
    if (service.pid === null) throw new Error('The service under valgrind has no pid')
    await addBatches(
      service.url,
      SKUS.flatMap((sku) => batchesOf(sku, LARGE_QTY)),
    )
    const workload = WORKLOADS[workloadName]()
    console.log(`${workloadName} on ${storage}: ${warmup} requests to warm up, then ${counted} counted`)
    await drive(service.url, warmup, workload)
    await instrument(service.pid, true, serviceEnv)
    const started = performance.now()
    await drive(service.url, counted, workload)
    const seconds = (performance.now() - started) / 1000
    await instrument(service.pid, false, serviceEnv)
    const code = await service.stop()
    if (code !== 0) throw new Error(`The service exited with ${code}`)
    const threads = await threadTotals(profile)
    const instructions = threads.reduce((sum, n) => sum + n, 0)
    const main = threads[0] ?? 0
    const record = {
      stamp,
      storage,
      warmup,
      workload: workloadName,
      requests: counted,
      instructions,
      perRequest: Math.round(instructions / counted),
      /** The thread that serves requests; the others compile, collect garbage and (embedded) run the database. */
      mainThreadPerRequest: Math.round(main / counted),
      secondsUnderValgrind: Math.round(seconds * 10) / 10,
      profile,
    }
    await writeFile(join(results, `instructions-${stamp}.json`), `${JSON.stringify(record, null, 2)}\n`)
    console.log(
      `${record.perRequest.toLocaleString('en')} instructions per request, ` +
        `${record.mainThreadPerRequest.toLocaleString('en')} of them on the main thread ` +
        `(${instructions.toLocaleString('en')} over ${counted}); callgrind_annotate ${profile}-01 shows where`,
    )
    return 0
  } finally {
    await service?.stop()
    await database?.drop()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  }
}

process.exitCode = await main()
