import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDatabase, query } from './postgres.ts'
import { samplePeakRss } from './rss.ts'
import { startService } from './service.ts'
import { progress, type Settings } from './settings.ts'

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url))

export type ImportRun = Readonly<{
  /** embedded: PGlite under a fresh DATA_DIR; postgres: DATABASE_URL; url: through a running service's HTTP API. */
  mode: 'embedded' | 'postgres' | 'url'
  rows: number
  /**
   * The import itself, as the command reports it: from the first row read to the last chunk committed.
   * Start-up (a fresh embedded database's initdb above all) and migrations are in `commandSeconds`.
   */
  seconds: number
  /** `rows` over `seconds`. */
  batchesPerSecond: number
  /** From starting the command to its exit: start-up and migrations included. */
  commandSeconds: number
  exitCode: number | null
  /** The command's last line of output. */
  summary: string
  /** Batches of the file found in the database afterwards. */
  stored: number | null
  /** The importing process; with `url`, the service it imports into. */
  peakRssMB: number | null
}>

/**
 * Target 6: `allocation import-batches` of `importRows` rows (1,000 skus, a warehouse batch and
 * batches arriving later), into a fresh embedded directory, a fresh PostgreSQL database, and through
 * `--url` into a running service on a fresh embedded directory (the import a live service takes).
 */
export async function imports(settings: Settings): Promise<ImportRun[]> {
  if (!settings.only.has('import') || settings.serviceUrl) return []
  const dir = await mkdtemp(join(tmpdir(), 'allocation-import-'))
  const runs: ImportRun[] = []
  try {
    const file = join(dir, 'batches.csv')
    await writeFile(file, csv(settings.stamp, settings.importRows))
    const rows = settings.importRows
    const dataDir = join(dir, 'data')
    runs.push(
      await timed('embedded', rows, ['import-batches', file], { DATA_DIR: dataDir }, async () => {
        const { PGlite } = await import('@electric-sql/pglite')
        const pglite = new PGlite({ dataDir })
        try {
          const { rows: found } = await pglite.query<{ n: number }>('SELECT count(*)::int AS n FROM batches')
          return found[0]?.n ?? null
        } finally {
          await pglite.close()
        }
      }),
    )
    const liveDir = join(dir, 'live')
    const live = await startService({ DATA_DIR: liveDir })
    try {
      progress(`a service on PGlite at ${live.url} to import into`)
      runs.push(
        await timed(
          'url',
          rows,
          ['--url', live.url, 'import-batches', file],
          {},
          async () => {
            const products = (await (await fetch(`${live.url}/products`)).json()) as Array<{ sku: string }>
            let stored = 0
            for (const { sku } of products.filter((p) => p.sku.startsWith(`import-${settings.stamp}-`))) {
              const product = (await (await fetch(`${live.url}/products/${sku}`)).json()) as { batches: unknown[] }
              stored += product.batches.length
            }
            return stored
          },
          live.pid,
        ),
      )
    } finally {
      await live.stop()
    }
    const scratch = await createDatabase(settings.postgresUrl, 'allocation_bench_import', settings.stamp)
    try {
      runs.push(
        await timed('postgres', rows, ['import-batches', file], { DATABASE_URL: scratch.url }, async () => {
          const [row] = await query(scratch.url, 'SELECT count(*)::int AS n FROM batches')
          return Number(row?.n)
        }),
      )
    } finally {
      await scratch.drop()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return runs
}

/** `rows` batches over 1,000 skus: per sku one in the warehouse, the others arriving a day apart. */
function csv(stamp: string, rows: number): string {
  const lines = ['ref,sku,qty,eta']
  const day = Date.UTC(2030, 0, 1)
  for (let i = 0; i < rows; i++) {
    const sku = `import-${stamp}-sku-${i % 1000}`
    const n = Math.floor(i / 1000)
    const eta = n === 0 ? '' : new Date(day + n * 86_400_000).toISOString().slice(0, 10)
    lines.push(`import-${stamp}-${i},${sku},${100 + (i % 50)},${eta}`)
  }
  return `${lines.join('\n')}\n`
}

async function timed(
  mode: ImportRun['mode'],
  rows: number,
  args: string[],
  env: Record<string, string>,
  count: () => Promise<number | null>,
  servicePid: number | null = null,
): Promise<ImportRun> {
  progress(`import of ${rows} rows, ${mode}`)
  const { DATABASE_URL: _url, DATA_DIR: _dir, ...inherited } = process.env
  const started = performance.now()
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...inherited, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const rss = samplePeakRss([servicePid ?? child.pid ?? null])
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output = (output + chunk).slice(-4000)
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output = (output + chunk).slice(-4000)
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  const commandSeconds = (performance.now() - started) / 1000
  const [peakRssMB = null] = rss()
  const stored = await count().catch(() => null)
  const summary = output.trim().split('\n').at(-1) ?? ''
  // "... (100000 rows in 9.1 s, 10989 rows/s)": the command's own timing of the import.
  const reported = /\((\d+) rows in ([\d.]+) s, \d+ rows\/s\)$/.exec(summary)
  const seconds = reported ? Number(reported[2]) : commandSeconds
  const run = {
    mode,
    rows,
    seconds,
    batchesPerSecond: rows / seconds,
    commandSeconds,
    exitCode: code,
    summary,
    stored,
    peakRssMB,
  }
  progress(
    `  ${Math.round(run.batchesPerSecond)} batches/s (import ${seconds.toFixed(1)} s, command ` +
      `${commandSeconds.toFixed(1)} s = ${Math.round(rows / commandSeconds)}/s), exit ${code}: ${summary}`,
  )
  return run
}
