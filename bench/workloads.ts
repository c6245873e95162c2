import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Consistency, checkPglite, checkPostgres } from './consistency.ts'
import { type CpuSplit, sampleCpu } from './cpu.ts'
import { allocate, type LoadResult } from './load.ts'
import { createDatabase, type DatabaseActivity, databaseActivity, query, serverPids } from './postgres.ts'
import { addBatches, batchesOf, LARGE_QTY, seedHistory } from './seed.ts'
import { externalService, type LogCounts, logsSince, type Service, startService } from './service.ts'

export const WORKLOADS = ['pgbench', 'uniform', 'history', 'hot', 'embedded'] as const
export type WorkloadName = (typeof WORKLOADS)[number]

export type Settings = Readonly<{
  stamp: string
  durationS: number
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
}>

export type RunRecord = LoadResult &
  Readonly<{
    workload: Exclude<WorkloadName, 'pgbench'>
    storage: 'postgres' | 'pglite'
    cpu: CpuSplit | null
    consistency: Consistency | null
    /** PostgreSQL's transaction counters over the run (approximate: they lag up to a second). */
    database: (DatabaseActivity & { commitsPerAllocation: number }) | null
    /** Lines the service logged at warn and above during the run, and the first errors it logged. */
    logs: LogCounts
    errorSamples: readonly string[]
    details: Readonly<Record<string, unknown>>
  }>

type Recorder = (run: RunRecord) => void

type Storage = Readonly<{
  storage: RunRecord['storage']
  postgresPids: () => Promise<number[]>
  activity: () => Promise<DatabaseActivity | null>
  check: (orderPrefix: string, acknowledged: number) => Promise<Consistency | null>
}>

type Measure = (
  workload: RunRecord['workload'],
  connections: number,
  skus: readonly string[],
  options?: {
    details?: Record<string, unknown>
    /** More details, read once the run is over. */
    after?: () => Promise<Record<string, unknown>>
    stopAfterOutOfStock?: number
    durationS?: number
  },
) => Promise<RunRecord>

export const progress = (message: string) =>
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`)

/** uniform (10 and 50 connections), history and hot sku against one service on PostgreSQL. */
export async function serverWorkloads(settings: Settings, record: Recorder): Promise<void> {
  const { only, stamp } = settings
  if (!only.has('uniform') && !only.has('history') && !only.has('hot')) return
  const scratch = settings.serviceUrl ? null : await createDatabase(settings.postgresUrl, 'allocation_bench', stamp)
  const databaseUrl = scratch?.url ?? settings.serviceDatabaseUrl
  const databaseName = databaseUrl ? new URL(databaseUrl).pathname.slice(1) : null
  let service: Service | null = null
  try {
    service = settings.serviceUrl
      ? externalService(settings.serviceUrl)
      : await startService({ DATABASE_URL: databaseUrl ?? '' })
    progress(`service at ${service.url} (PostgreSQL${databaseName ? `, database ${databaseName}` : ''})`)
    const skus = await catalogue(service, settings)
    const measure = measurer(settings, service, record, {
      storage: 'postgres',
      postgresPids: async () => (databaseName ? serverPids(settings.postgresUrl, databaseName) : []),
      activity: async () => (databaseName ? databaseActivity(settings.postgresUrl, databaseName) : null),
      check: async (orderPrefix, acknowledged) =>
        databaseUrl ? checkPostgres(databaseUrl, orderPrefix, acknowledged) : null,
    })

    let fresh: RunRecord | null = null
    if (only.has('uniform') || only.has('history')) fresh = await measure('uniform', 10, skus)
    if (only.has('uniform')) await measure('uniform', 50, skus)
    if (only.has('history')) {
      if (!databaseUrl) progress('history skipped: it seeds through SQL and needs --database-url with --url')
      else await measure('history', 10, skus, { details: await history(databaseUrl, skus, settings) })
    }
    if (only.has('hot')) await hotSku(service, measure, settings, fresh)
  } finally {
    await service?.stop()
    await scratch?.drop()
  }
}

/** The uniform workload, 10 connections, on a service started on embedded PGlite. */
export async function embeddedWorkload(settings: Settings, record: Recorder): Promise<void> {
  if (!settings.only.has('embedded') || settings.serviceUrl) return
  const dataDir = await mkdtemp(join(tmpdir(), 'allocation-bench-'))
  let service: Service | null = null
  try {
    const started = await startService({ DATA_DIR: dataDir })
    service = started
    progress(`service at ${started.url} (PGlite in ${dataDir})`)
    const skus = await catalogue(started, settings)
    const measure = measurer(settings, started, record, {
      storage: 'pglite',
      postgresPids: async () => [],
      activity: async () => null,
      // PGlite is single-user: its directory can be opened only once the service has stopped.
      check: async (orderPrefix, acknowledged) => {
        const code = await started.stop()
        if (code !== 0) progress(`the embedded service exited with code ${code}`)
        return checkPglite(dataDir, orderPrefix, acknowledged)
      },
    })
    await measure('embedded', 10, skus)
  } finally {
    await service?.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** Adds the skus' batches through the API, then warms the service up with allocations it does not record. */
async function catalogue(service: Service, settings: Settings): Promise<string[]> {
  const skus = Array.from(
    { length: settings.skus },
    (_, i) => `bench-${settings.stamp}-sku-${String(i).padStart(3, '0')}`,
  )
  const started = performance.now()
  await addBatches(
    service.url,
    skus.flatMap((sku) => batchesOf(sku, LARGE_QTY)),
  )
  progress(`added ${skus.length * 3} batches in ${((performance.now() - started) / 1000).toFixed(1)} s; warming up`)
  const orderPrefix = `bench-${settings.stamp}-warmup-${Math.random().toString(36).slice(2, 8)}`
  await allocate({ url: service.url, connections: 10, durationS: settings.warmupS, skus, orderPrefix })
  return skus
}

function measurer(settings: Settings, service: Service, record: Recorder, storage: Storage): Measure {
  return async (workload, connections, skus, options = {}) => {
    const orderPrefix = `bench-${settings.stamp}-${workload}-${connections}`
    const durationS = options.durationS ?? settings.durationS
    progress(`${workload} on ${storage.storage}, ${connections} connections, up to ${durationS} s`)
    const logsBefore = service.logCounts()
    const activityBefore = await storage.activity()
    const cpu = await sampleCpu({ servicePid: service.pid, postgresPids: storage.postgresPids })
    const load = await allocate({
      url: service.url,
      connections,
      durationS,
      skus,
      orderPrefix,
      ...(options.stopAfterOutOfStock !== undefined && { stopAfterOutOfStock: options.stopAfterOutOfStock }),
    })
    const split = await cpu()
    // Requests in flight when the load generator stopped are still being answered.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const logs = logsSince(logsBefore, service.logCounts())
    const activityAfter = await storage.activity()
    const database =
      activityBefore && activityAfter
        ? {
            commits: activityAfter.commits - activityBefore.commits,
            rollbacks: activityAfter.rollbacks - activityBefore.rollbacks,
            deadlocks: activityAfter.deadlocks - activityBefore.deadlocks,
            commitsPerAllocation: (activityAfter.commits - activityBefore.commits) / Math.max(1, load.allocated),
          }
        : null
    const consistency = await storage.check(orderPrefix, load.allocated)
    const run: RunRecord = {
      ...load,
      workload,
      storage: storage.storage,
      cpu: split,
      consistency,
      database,
      logs,
      errorSamples: service.errorSamples(),
      details: { ...options.details, ...(await options.after?.()) },
    }
    record(run)
    return run
  }
}

/** Every sku gets `historyLines` past allocations, the first one `hotHistoryLines`. */
async function history(databaseUrl: string, skus: readonly string[], settings: Settings) {
  const lines = new Map(skus.map((sku, i) => [sku, i === 0 ? settings.hotHistoryLines : settings.historyLines]))
  const seeded = await seedHistory(databaseUrl, lines)
  const [counts] = await query(
    databaseUrl,
    `SELECT min(n)::int AS min, max(n)::int AS max FROM (SELECT count(*) AS n FROM allocations WHERE sku = ANY($1) GROUP BY sku) c`,
    [skus],
  )
  progress(`seeded ${seeded.lines} past allocations in ${seeded.seconds.toFixed(1)} s`)
  return { seededLines: seeded.lines, seedSeconds: seeded.seconds, linesPerSku: counts }
}

/**
 * One sku, sized so that the run lasts about the set duration at half the uniform rate (the target), and
 * run until its stock is gone (capped at three times the duration).
 */
async function hotSku(service: Service, measure: Measure, settings: Settings, fresh: RunRecord | null) {
  const sku = `bench-${settings.stamp}-hot`
  const rate = fresh?.allocationsPerSecond ?? 500
  const perBatch = Math.max(1_000, Math.ceil((rate * 0.5 * settings.durationS * 2) / 3))
  await addBatches(service.url, batchesOf(sku, perBatch))
  await measure('hot', settings.hotConnections, [sku], {
    durationS: settings.durationS * 3,
    stopAfterOutOfStock: settings.hotConnections * 2,
    details: { sku },
    after: async () => {
      const product = (await (await fetch(`${service.url}/products/${sku}`)).json()) as {
        totals: { purchased: number; allocated: number; available: number }
      }
      // A line asks for at most 3: below that the stock is gone for some lines, as good as gone.
      return { totals: product.totals, stockGone: product.totals.available < 3 }
    },
  })
}
