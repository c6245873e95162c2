import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { renderChart } from './chart.ts'
import { imports } from './import.ts'
import { describeMachine } from './machine.ts'
import { type PgbenchResult, pgbench } from './pgbench.ts'
import { defaultPostgresUrl } from './postgres.ts'
import { type BenchResults, formatReport } from './report.ts'
import { scaleOut } from './scale-out.ts'
import { progress, type RunRecord, type Settings, WORKLOADS, type WorkloadName } from './settings.ts'
import { embeddedWorkload, type ServerFindings, serverWorkloads } from './workloads.ts'

const USAGE = `npm run bench -- [options]

  --quick                 short runs (5 s each) to prove the harness
  --duration <s>          seconds per measured run (default 25; the hot sku runs until its stock is gone)
  --only <workloads>      comma-separated: ${WORKLOADS.join(', ')}
                          (default: all; or BENCH_ONLY=...). Any of uniform, reads, holds, backlog, history, hot
                          also runs uniform at 10 connections: the ratios compare with it
  --import-rows <n>       rows of the import workload (default 100000)
  --url <url>             drive a running service instead of starting one (embedded is skipped)
  --database-url <url>    that service's database, for the consistency checks and the history seed
  --postgres <url>        server for the bench's own databases (default ${defaultPostgresUrl})
  --pgbench <path>        pgbench binary (default: pgbench on PATH)
  --baseline <json>       draw these results as "before" in the chart
  --chart <svg>           where to write the chart (default docs/benchmarks.svg for a full run,
                          bench/results/<stamp>.svg otherwise)
  --render <json>         print the table and draw the chart of saved results; runs nothing`

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    only: { type: 'string', multiple: true },
    'import-rows': { type: 'string' },
    url: { type: 'string' },
    'database-url': { type: 'string' },
    postgres: { type: 'string', default: defaultPostgresUrl },
    pgbench: { type: 'string', default: 'pgbench' },
    baseline: { type: 'string' },
    chart: { type: 'string' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const readResults = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as BenchResults

async function main(): Promise<number> {
  if (args.help) {
    console.log(USAGE)
    return 0
  }
  const baseline = args.baseline ? await readResults(args.baseline) : null
  if (args.render) {
    const results = await readResults(args.render)
    console.log(formatReport(results))
    await writeChart(results, baseline, args.chart ?? here('../docs/benchmarks.svg'))
    return 0
  }

  const chosen = args.only ?? (process.env.BENCH_ONLY ? [process.env.BENCH_ONLY] : null)
  const only = new Set((chosen ?? [...WORKLOADS]).flatMap((list) => list.split(',')).map((w) => w.trim()))
  const unknown = [...only].filter((w) => !(WORKLOADS as readonly string[]).includes(w))
  if (unknown.length > 0) throw new Error(`Unknown workload ${unknown.join(', ')}; choose from ${WORKLOADS.join(', ')}`)
  const startedAt = new Date()
  const stamp = startedAt.toISOString().replace(/\D/g, '').slice(0, 14)
  const durationS = Number(args.duration ?? (args.quick ? 5 : 25))
  if (!(durationS > 0)) throw new Error(`--duration must be a positive number of seconds, not ${args.duration}`)
  const settings: Settings = {
    stamp,
    durationS,
    embeddedDurationS: args.quick ? durationS : Math.max(durationS, 120),
    warmupS: args.quick ? 1 : 5,
    postgresUrl: args.postgres,
    serviceUrl: args.url ?? null,
    serviceDatabaseUrl: args['database-url'] ?? null,
    only: only as Set<WorkloadName>,
    skus: 100,
    historyLines: 1_000,
    hotHistoryLines: 100_000,
    hotConnections: 64,
    holdExpiryPerSecond: 1_000,
    backlogSizes: [10, 10_000],
    backlogArrivals: args.quick ? 10 : 30,
    importRows: Number(args['import-rows'] ?? 100_000),
  }

  const machine = await describeMachine(settings.postgresUrl)
  progress(`${machine.cpus} cores (${machine.cpuModel}), load average ${machine.loadAverage.join(' ')}`)
  const runs: RunRecord[] = []
  const failures: string[] = []
  const record = (run: RunRecord) => {
    runs.push(run)
    const c = run.consistency
    progress(
      `  ${Math.round(run.allocationsPerSecond)} answers/s, p99 ${run.latency.p99.toFixed(1)} ms, ` +
        `${run.non2xx} non-2xx (${run.serverErrors} 5xx), consistent: ${c ? c.consistent : 'n/a'}`,
    )
  }
  const phase = async (name: string, body: () => Promise<void>) => {
    try {
      await body()
    } catch (error) {
      failures.push(`${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
      progress(`${name} failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  let pg: PgbenchResult | null = null
  if (only.has('pgbench')) {
    await phase('pgbench', async () => {
      progress(`pgbench: init at scale 10, then TPC-B-like and select-only, ${durationS} s each at 10 clients`)
      pg = await pgbench(settings.postgresUrl, stamp, durationS, { binary: args.pgbench, selectOnly: true })
      progress(`  TPC-B-like ${Math.round(pg.tps)} tps, select-only ${Math.round(pg.selectOnly?.tps ?? 0)} tps`)
    })
  }
  const findings: ServerFindings = { backlog: null, freshness: null }
  await phase('PostgreSQL workloads', () => serverWorkloads(settings, record, findings))
  await phase('scale-out workload', () => scaleOut(settings, record))
  await phase('embedded workload', () => embeddedWorkload(settings, record))
  let importRuns: Awaited<ReturnType<typeof imports>> = []
  await phase('import workload', async () => {
    importRuns = await imports(settings)
  })

  const results: BenchResults & { failures: string[] } = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    settings: { ...settings, only: [...only] },
    machine,
    pgbench: pg,
    runs,
    ...findings,
    imports: importRuns,
    failures,
  }
  await mkdir(here('results'), { recursive: true })
  const json = here(`results/${stamp}.json`)
  await writeFile(json, `${JSON.stringify(results, null, 2)}\n`)
  const full = !args.quick && !chosen && !args.url
  await writeChart(
    results,
    baseline,
    args.chart ?? (full ? here('../docs/benchmarks.svg') : here(`results/${stamp}.svg`)),
  )
  progress(`raw results in ${json}`)
  console.log(formatReport(results))
  for (const failure of failures) console.error(`\nFAILED ${failure}`)
  return failures.length > 0 ? 1 : 0
}

async function writeChart(results: BenchResults, baseline: BenchResults | null, path: string): Promise<void> {
  await writeFile(path, renderChart(results, baseline))
  progress(`chart in ${path}`)
}

process.exitCode = await main()
