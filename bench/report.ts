import type { Machine } from './machine.ts'
import type { PgbenchResult } from './pgbench.ts'
import type { RunRecord } from './workloads.ts'

/** What one bench run writes to `bench/results/<stamp>.json`. */
export type BenchResults = Readonly<{
  startedAt: string
  finishedAt: string
  command: string
  settings: Readonly<Record<string, unknown>>
  machine: Machine
  pgbench: PgbenchResult | null
  runs: readonly RunRecord[]
}>

export type Ratios = Readonly<{
  uniformPerPgbenchTps: number | null
  historyPerFresh: number | null
  hotPerUniform: number | null
}>

export const findRun = (results: BenchResults, workload: RunRecord['workload'], connections?: number) =>
  results.runs.find(
    (run) => run.workload === workload && (connections === undefined || run.connections === connections),
  )

export function ratios(results: BenchResults): Ratios {
  const uniform = findRun(results, 'uniform', 10)?.allocationsPerSecond
  const per = (value: number | undefined, base: number | undefined) => (value && base ? value / base : null)
  return {
    uniformPerPgbenchTps: per(uniform, results.pgbench?.tps),
    historyPerFresh: per(findRun(results, 'history')?.allocationsPerSecond, uniform),
    hotPerUniform: per(findRun(results, 'hot')?.allocationsPerSecond, uniform),
  }
}

const fixed = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

function consistency(run: RunRecord): string {
  const c = run.consistency
  if (!c) return 'n/a'
  if (c.consistent) return 'yes'
  const lost = Math.max(0, c.acknowledged - c.stored)
  return `NO (over ${c.overAllocated}, mismatched ${c.mismatched}, duplicates ${c.duplicates}, lost ${lost})`
}

/** The rate at the start and at the end of a run, whole seconds only (the last one is cut short). */
function trend(perSecond: readonly number[] | undefined): string {
  const whole = (perSecond ?? []).slice(0, -1)
  if (whole.length < 10) return 'n/a'
  const mean = (values: number[]) => values.reduce((sum, n) => sum + n, 0) / values.length
  return `${fixed(mean(whole.slice(0, 5)))} -> ${fixed(mean(whole.slice(-5)))}`
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

/** The table, the CPU split, pgbench and the ratios, as Markdown (it reads as well in a terminal). */
export function formatReport(results: BenchResults): string {
  const runs = table(
    [
      'workload',
      'storage',
      'connections',
      'allocations/s',
      'p50 ms',
      'p99 ms',
      'non-2xx',
      'out of stock',
      '5xx',
      'errors',
      'consistent',
    ],
    results.runs.map((run) => [
      run.workload,
      run.storage === 'pglite' ? 'PGlite' : 'PostgreSQL',
      String(run.connections),
      fixed(run.allocationsPerSecond),
      fixed(run.latency.p50, 1),
      fixed(run.latency.p99, 1),
      String(run.non2xx),
      String(run.outOfStock),
      String(run.serverErrors),
      String(run.connectionErrors),
      consistency(run),
    ]),
  )
  const cores = (n: number | null | undefined) => (n === null || n === undefined ? 'n/a' : fixed(n, 2))
  const cpu = table(
    [
      'workload',
      'connections',
      'service (node)',
      'PostgreSQL',
      'load generator',
      'other',
      'idle',
      'commits/allocation',
      'rollbacks',
      'allocations/s, first 5 s -> last 5 s',
    ],
    results.runs.map((run) => [
      run.workload,
      String(run.connections),
      cores(run.cpu?.service),
      cores(run.cpu?.postgres),
      cores(run.cpu?.bench),
      cores(run.cpu?.other),
      cores(run.cpu?.idle),
      run.database ? fixed(run.database.commitsPerAllocation, 2) : 'n/a',
      run.database ? String(run.database.rollbacks) : 'n/a',
      trend(run.perSecond),
    ]),
  )
  const r = ratios(results)
  const ratio = (n: number | null) => (n === null ? 'n/a' : `${fixed(n, 2)}x`)
  const pg = results.pgbench
  const source = results.machine.source
  const lines = [
    `Commit ${source ? `${source.commit}${source.changedFiles ? ` with ${source.changedFiles} files changed under src/` : ''}` : 'unknown'}, ${results.startedAt}`,
    '',
    runs,
    '',
    `Where the time goes (cores busy on average, of ${results.machine.cpus}; "other" is the rest of the machine):`,
    '',
    cpu,
    '',
    pg
      ? `pgbench TPC-B-like (scale ${pg.scale}, ${pg.clients} clients, ${pg.threads} threads, ${pg.seconds} s): ${fixed(pg.tps)} tps`
      : 'pgbench: not run',
    `uniform 10 connections / pgbench tps: ${ratio(r.uniformPerPgbenchTps)}`,
    `history / fresh (10 connections): ${ratio(r.historyPerFresh)}`,
    `hot sku / uniform: ${ratio(r.hotPerUniform)}`,
    '',
    'Targets (issue 5):',
    ...targets(results, r).map(
      ([name, met]) => `- ${name}: ${met === null ? 'not measured' : met ? 'met' : 'NOT met'}`,
    ),
  ]
  return lines.join('\n')
}

export function targets(results: BenchResults, r: Ratios): [string, boolean | null][] {
  const uniform = findRun(results, 'uniform', 10)
  const hot = findRun(results, 'hot')
  const embedded = findRun(results, 'embedded')
  const atLeast = (n: number | null, min: number) => (n === null ? null : n >= min)
  return [
    ['uniform >= 1.0x pgbench tps', atLeast(r.uniformPerPgbenchTps, 1)],
    ['uniform p99 <= 20 ms', uniform ? uniform.latency.p99 <= 20 : null],
    ['history >= 0.9x fresh', atLeast(r.historyPerFresh, 0.9)],
    ['hot sku >= 0.5x uniform', atLeast(r.hotPerUniform, 0.5)],
    ['hot sku: no oversell, no 5xx', hot ? hot.serverErrors === 0 && hot.consistency?.consistent === true : null],
    ['embedded >= 1,000 allocations/s', embedded ? embedded.allocationsPerSecond >= 1000 : null],
  ]
}
