import type { Consistency } from './consistency.ts'
import type { CpuSplit } from './cpu.ts'
import type { LoadResult } from './load.ts'
import type { DatabaseActivity } from './postgres.ts'
import type { LogCounts } from './service.ts'

export const WORKLOADS = [
  'pgbench',
  'uniform',
  'reads',
  'holds',
  'backlog',
  'history',
  'hot',
  'scale-out',
  'embedded',
  'import',
] as const
export type WorkloadName = (typeof WORKLOADS)[number]

/** What a measured run is called in the results: a workload, or one half of one (reads). */
export type RunName =
  | Exclude<WorkloadName, 'pgbench' | 'reads' | 'backlog' | 'import'>
  | 'reads-product'
  | 'reads-order'
  | 'reads-product-wrk'
  | 'reads-order-wrk'
  /** The holds run's yardstick: the same allocations on the same service just before and after it. */
  | 'holds-before'
  | 'holds-after'
  /** Two processes again, each sku's allocations sent to one of them. */
  | 'scale-out-by-sku'

export type Settings = Readonly<{
  stamp: string
  durationS: number
  /**
   * The embedded run's length: at least two minutes (but with `--quick`), long enough for the embedded
   * database's upkeep to run and for the heaps to reach their size under a sustained load (target 7).
   */
  embeddedDurationS: number
  warmupS: number
  /** The server the bench creates its databases on. */
  postgresUrl: string
  /** `--url`: drive a running service instead of starting one; `--database-url`: its database. */
  serviceUrl: string | null
  serviceDatabaseUrl: string | null
  only: ReadonlySet<WorkloadName>
  skus: number
  historyLines: number
  hotHistoryLines: number
  hotConnections: number
  /** Holds released per second while the holds run allocates (target 5). */
  holdExpiryPerSecond: number
  /** Waiting lines on the sku in the two backlog cases, and how many arrivals each is timed over. */
  backlogSizes: readonly [number, number]
  backlogArrivals: number
  importRows: number
}>

export type RunRecord = LoadResult &
  Readonly<{
    workload: RunName
    storage: 'postgres' | 'pglite'
    /** Highest resident memory of the service's process during the run (MB); for several processes, the largest. */
    peakRssMB?: number | null
    cpu: CpuSplit | null
    consistency: Consistency | null
    /** PostgreSQL's transaction counters over the run (approximate: they lag up to a second). */
    database: (DatabaseActivity & { commitsPerAllocation: number }) | null
    /** Lines the service logged at warn and above during the run, and the first errors it logged. */
    logs: LogCounts
    errorSamples: readonly string[]
    details: Readonly<Record<string, unknown>>
  }>

export type Recorder = (run: RunRecord) => void

export type Measure = (
  workload: RunRecord['workload'],
  connections: number,
  skus: readonly string[],
  options?: {
    /** Another load than allocations of `skus` (reads); its run is not checked for consistency. */
    load?: () => Promise<LoadResult>
    /** Allocations spread over several processes of the service. */
    urls?: readonly string[]
    /** With `urls`, each sku's allocations to one process (`LoadSpec.skuPerProcess`). */
    skuPerProcess?: boolean
    details?: Record<string, unknown>
    /** More details, read once the run is over. */
    after?: () => Promise<Record<string, unknown>>
    stopAfterOutOfStock?: number
    durationS?: number
  },
) => Promise<RunRecord>

export const progress = (message: string) =>
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`)
