import type { BacklogResult } from './backlog.ts'
import type { ImportRun } from './import.ts'
import type { Machine } from './machine.ts'
import type { PgbenchResult } from './pgbench.ts'
import type { Freshness } from './reads.ts'
import type { RunRecord } from './settings.ts'

/** What one bench run writes to `bench/results/<stamp>.json`. */
export type BenchResults = Readonly<{
  startedAt: string
  finishedAt: string
  command: string
  settings: Readonly<Record<string, unknown>>
  machine: Machine
  pgbench: PgbenchResult | null
  runs: readonly RunRecord[]
  /** Absent from results of the first round's bench. */
  backlog?: BacklogResult | null
  freshness?: Freshness | null
  imports?: readonly ImportRun[]
}>

export type Ratios = Readonly<{
  uniformPerPgbenchTps: number | null
  historyPerFresh: number | null
  hotPerUniform: number | null
  embeddedPerUniform: number | null
  productReadsPerSelectOnly: number | null
  orderReadsPerSelectOnly: number | null
  /** Allocations while holds expire, per uniform without. */
  holdsPerUniform: number | null
  /**
   * Allocations while holds expire, per the mean of the same allocations just before and after on the
   * same service (target 5); `null` in results from before these were measured.
   */
  holdsPerWithout: number | null
  /** p50 cost of an arrival that fills 10 lines, 10,000 waiting against 10. */
  backlogCost: number | null
  scaleOutPerUniform: number | null
  /** The same, each sku's allocations sent to one process; `null` in results from before it was measured. */
  scaleOutBySkuPerUniform: number | null
}>

export const findRun = (results: BenchResults, workload: RunRecord['workload'], connections?: number) =>
  results.runs.find(
    (run) => run.workload === workload && (connections === undefined || run.connections === connections),
  )

export function ratios(results: BenchResults): Ratios {
  const uniform = findRun(results, 'uniform', 10)?.allocationsPerSecond
  const per = (value: number | undefined, base: number | undefined) => (value && base ? value / base : null)
  const selectOnly = results.pgbench?.selectOnly?.tps
  const [few, many] = [...(results.backlog?.cases ?? [])].sort((a, b) => a.waiting - b.waiting)
  return {
    uniformPerPgbenchTps: per(uniform, results.pgbench?.tps),
    historyPerFresh: per(findRun(results, 'history')?.allocationsPerSecond, uniform),
    hotPerUniform: per(findRun(results, 'hot')?.allocationsPerSecond, uniform),
    embeddedPerUniform: per(findRun(results, 'embedded')?.allocationsPerSecond, uniform),
    // Taken with wrk when it ran: a load generator in C, as pgbench's client is.
    productReadsPerSelectOnly: per(
      (findRun(results, 'reads-product-wrk') ?? findRun(results, 'reads-product'))?.allocationsPerSecond,
      selectOnly,
    ),
    orderReadsPerSelectOnly: per(
      (findRun(results, 'reads-order-wrk') ?? findRun(results, 'reads-order'))?.allocationsPerSecond,
      selectOnly,
    ),
    holdsPerUniform: per(findRun(results, 'holds')?.allocationsPerSecond, uniform),
    holdsPerWithout: per(findRun(results, 'holds')?.allocationsPerSecond, holdsWithout(results)),
    backlogCost: few && many && few !== many ? per(many.arrival.p50, few.arrival.p50) : null,
    scaleOutPerUniform: per(findRun(results, 'scale-out')?.allocationsPerSecond, uniform),
    scaleOutBySkuPerUniform: per(findRun(results, 'scale-out-by-sku')?.allocationsPerSecond, uniform),
  }
}

/** The mean rate of the runs without holds around the holds run. */
function holdsWithout(results: BenchResults): number | undefined {
  const around = [findRun(results, 'holds-before'), findRun(results, 'holds-after')].filter((run) => run !== undefined)
  if (around.length === 0) return undefined
  return around.reduce((sum, run) => sum + run.allocationsPerSecond, 0) / around.length
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

const RUN_LABELS: Partial<Record<RunRecord['workload'], string>> = {
  'reads-product': 'GET /products/{sku}',
  'reads-order': 'GET /orders/{orderid}',
  'reads-product-wrk': 'GET /products/{sku}, wrk',
  'reads-order-wrk': 'GET /orders/{orderid}, wrk',
  holds: 'uniform, holds expiring',
  'holds-before': 'uniform, before the holds',
  'holds-after': 'uniform, after the holds',
  'scale-out': 'uniform, 2 HTTP + relay',
  'scale-out-by-sku': 'uniform, 2 HTTP + relay, a sku to one',
}

const label = (run: RunRecord) => RUN_LABELS[run.workload] ?? run.workload

/** The tables, the CPU split, pgbench, the ratios and the targets, as Markdown (it reads as well in a terminal). */
export function formatReport(results: BenchResults): string {
  const mb = (n: number | null | undefined) => (n === null || n === undefined ? 'n/a' : fixed(n))
  const runs = table(
    [
      'workload',
      'storage',
      'connections',
      'answers/s',
      'p50 ms',
      'p99 ms',
      'non-2xx',
      'out of stock',
      '5xx',
      'errors',
      'consistent',
      'peak RSS MB',
    ],
    results.runs.map((run) => [
      label(run),
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
      mb(run.peakRssMB),
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
      'commits/answer',
      'rollbacks',
      'answers/s, first 5 s -> last 5 s',
    ],
    results.runs.map((run) => [
      label(run),
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
  const holds = findRun(results, 'holds')?.details
  const lines = [
    `Commit ${source ? `${source.commit}${source.changedFiles ? ` with ${source.changedFiles} files changed under src/` : ''}` : 'unknown'}, ${results.startedAt}, load average ${results.machine.loadAverage.join(' ')} at the start`,
    '',
    'Answers/s: 201s of allocations, 200s of reads. Peak RSS: the service process (the largest of them when scaled out).',
    '',
    runs,
    '',
    `Where the time goes (cores busy on average, of ${results.machine.cpus}; "other" is the rest of the machine):`,
    '',
    cpu,
    '',
    pg
      ? `pgbench (scale ${pg.scale}, ${pg.clients} clients, ${pg.threads} threads, ${pg.seconds} s): TPC-B-like ${fixed(pg.tps)} tps, select-only ${pg.selectOnly ? `${fixed(pg.selectOnly.tps)} tps` : 'not run'}`
      : 'pgbench: not run',
    ...(holds
      ? [
          `holds: ${fixed(Number(holds.holdsSeeded))} seeded to expire at ${fixed(Number(holds.holdsPerSecond))}/s; ` +
            `${fixed(Number(holds.holdsReleased))} released (${fixed(Number(holds.releasedPerSecond))}/s), ` +
            `${fixed(Number(holds.holdsOverdueByEnd))} more than 2 s overdue at the end`,
        ]
      : []),
    ...backlogLines(results.backlog),
    ...importLines(results.imports),
    ...(results.freshness
      ? [`read after write, same process: ${results.freshness.stale} stale of ${results.freshness.writes}`]
      : []),
    ...(() => {
      const f = findRun(results, 'scale-out')?.details?.freshness as Freshness | undefined
      return f
        ? [
            `read after write, written through one HTTP process, read through the other: ${f.stale} stale of ${f.writes}`,
          ]
        : []
    })(),
    `hot sku / uniform: ${ratio(r.hotPerUniform)}; 2 HTTP processes + relay / 1 process: ${ratio(r.scaleOutPerUniform)}, ` +
      `each sku sent to one of them: ${ratio(r.scaleOutBySkuPerUniform)}`,
    '',
    'Targets:',
    ...targets(results, r).map(
      ([name, figure, met]) => `- ${name}: ${figure} -> ${met === null ? 'not measured' : met ? 'met' : 'NOT met'}`,
    ),
  ]
  return lines.join('\n')
}

function backlogLines(backlog: BenchResults['backlog']): string[] {
  if (!backlog) return []
  return [
    `backlog (a batch of 10 arriving fills 10 waiting lines; ${backlog.arrivals} arrivals each): ` +
      backlog.cases
        .map(
          (c) =>
            `${fixed(c.waiting)} waiting: p50 ${fixed(c.arrival.p50, 1)} ms, p90 ${fixed(c.arrival.p90, 1)} ms` +
            `${c.filled ? '' : ' (NOT every arrival filled 10 lines)'}`,
        )
        .join('; '),
  ]
}

function importLines(imports: BenchResults['imports']): string[] {
  return (imports ?? []).map(
    (run) =>
      `import-batches, ${run.mode}: ${fixed(run.rows)} rows in ${fixed(run.seconds, 1)} s = ${fixed(run.batchesPerSecond)} batches/s, ` +
      `${run.stored === null ? '?' : fixed(run.stored)} stored, exit ${run.exitCode}, peak RSS ${run.peakRssMB === null ? 'n/a' : fixed(run.peakRssMB)} MB`,
  )
}

/** Each target: its name, the figure measured, and whether it is met (`null`: not measured in this run). */
export function targets(results: BenchResults, r: Ratios): [string, string, boolean | null][] {
  const uniform = findRun(results, 'uniform', 10)
  const hot = findRun(results, 'hot')
  const embedded = findRun(results, 'embedded')
  const ratio = (n: number | null) => (n === null ? 'n/a' : `${fixed(n, 2)}x`)
  const atLeast = (n: number | null, min: number) => (n === null ? null : n >= min)
  const holds = findRun(results, 'holds')
  const stale = [results.freshness, findRun(results, 'scale-out')?.details?.freshness as Freshness | undefined].filter(
    (f): f is Freshness => f !== undefined && f !== null,
  )
  const staleCount = stale.reduce((sum, f) => sum + f.stale, 0)
  const importTarget = (mode: ImportRun['mode']): [string, string, boolean | null] => {
    const run = results.imports?.find((i) => i.mode === mode)
    const ok = run ? run.exitCode === 0 && run.stored === run.rows && run.batchesPerSecond >= 5000 : null
    return [
      `6. import-batches ${mode} >= 5,000 batches/s`,
      run ? `${fixed(run.batchesPerSecond)}/s over ${fixed(run.rows)} rows` : 'n/a',
      ok,
    ]
  }
  return [
    [
      '1. uniform (10 connections) >= 1.0x pgbench TPC-B tps',
      ratio(r.uniformPerPgbenchTps),
      atLeast(r.uniformPerPgbenchTps, 1),
    ],
    [
      '1. uniform p99 <= 20 ms',
      uniform ? `${fixed(uniform.latency.p99, 1)} ms` : 'n/a',
      uniform ? uniform.latency.p99 <= 20 : null,
    ],
    ['2. history >= 0.9x fresh', ratio(r.historyPerFresh), atLeast(r.historyPerFresh, 0.9)],
    ['3. embedded >= 0.5x uniform on PostgreSQL', ratio(r.embeddedPerUniform), atLeast(r.embeddedPerUniform, 0.5)],
    [
      '4. GET /products/{sku} >= 0.5x pgbench select-only tps',
      ratio(r.productReadsPerSelectOnly),
      atLeast(r.productReadsPerSelectOnly, 0.5),
    ],
    [
      '4. GET /orders/{orderid} >= 0.5x pgbench select-only tps',
      ratio(r.orderReadsPerSelectOnly),
      atLeast(r.orderReadsPerSelectOnly, 0.5),
    ],
    [
      '4. no stale read after a write',
      stale.length > 0 ? `${staleCount} stale of ${stale.reduce((s, f) => s + f.writes, 0)}` : 'n/a',
      stale.length > 0 ? staleCount === 0 : null,
    ],
    [
      '5. arrival filling 10 lines, 10,000 waiting <= 1.5x 10 waiting',
      ratio(r.backlogCost),
      r.backlogCost === null ? null : r.backlogCost <= 1.5 && (results.backlog?.cases.every((c) => c.filled) ?? false),
    ],
    (() => {
      // Against the runs just before and after it where they were measured; older results, the uniform run.
      const [slowdown, without] =
        r.holdsPerWithout === null ? [r.holdsPerUniform, 'uniform'] : [r.holdsPerWithout, 'the runs around it']
      return [
        '5. holds expiring at 1,000/s slow other skus by <= 20% (and are released on time)',
        holds
          ? `${ratio(slowdown)} of ${without} (${ratio(r.holdsPerUniform)} of uniform), ${fixed(Number(holds.details.holdsOverdueByEnd))} overdue`
          : 'n/a',
        slowdown === null ? null : slowdown >= 0.8 && Number(holds?.details.holdsOverdueByEnd) === 0,
      ]
    })(),
    importTarget('embedded'),
    importTarget('postgres'),
    importTarget('url'),
    [
      '7. embedded peak RSS under load < 300 MB',
      embedded?.peakRssMB ? `${fixed(embedded.peakRssMB)} MB over ${fixed(embedded.seconds)} s` : 'n/a',
      embedded?.peakRssMB ? embedded.peakRssMB < 300 : null,
    ],
    ['hot sku >= 0.5x uniform', ratio(r.hotPerUniform), atLeast(r.hotPerUniform, 0.5)],
    [
      'hot sku: no oversell, no 5xx',
      hot ? (hot.serverErrors === 0 && hot.consistency?.consistent === true ? 'none' : 'some') : 'n/a',
      hot ? hot.serverErrors === 0 && hot.consistency?.consistent === true : null,
    ],
  ]
}
