import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BacklogResult, backlog } from './backlog.ts'
import { type Consistency, checkPglite, checkPostgres } from './consistency.ts'
import { sampleCpu } from './cpu.ts'
import { holds } from './holds.ts'
import { allocate } from './load.ts'
import { createDatabase, type DatabaseActivity, databaseActivity, query, serverPids } from './postgres.ts'
import { type Freshness, freshness, reads } from './reads.ts'
import { samplePeakRss } from './rss.ts'
import { addBatches, batchesOf, LARGE_QTY, seedHistory } from './seed.ts'
import { externalService, logsSince, type Service, startService } from './service.ts'
import { type Measure, progress, type Recorder, type RunRecord, type Settings, type WorkloadName } from './settings.ts'

export type Storage = Readonly<{
  storage: RunRecord['storage']
  postgresPids: () => Promise<number[]>
  activity: () => Promise<DatabaseActivity | null>
  check: (orderPrefix: string, acknowledged: number) => Promise<Consistency | null>
}>

/** What the server workloads find besides measured runs. */
export type ServerFindings = { backlog: BacklogResult | null; freshness: Freshness | null }

const ON_ONE_SERVICE: readonly WorkloadName[] = ['uniform', 'reads', 'holds', 'backlog', 'history', 'hot']

/**
 * Against one service on PostgreSQL: uniform (10 and 50 connections), reads, holds expiring, the
 * backlog, history and the hot sku. Uniform at 10 connections runs for any of them: it is what the
 * ratios compare with, and its orders are what the order reads read.
 */
export async function serverWorkloads(settings: Settings, record: Recorder, findings: ServerFindings): Promise<void> {
  const { only, stamp } = settings
  if (!ON_ONE_SERVICE.some((w) => only.has(w))) return
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

    const fresh = await measure('uniform', 10, skus)
    if (only.has('uniform')) await measure('uniform', 50, skus)
    if (only.has('reads')) {
      const orderids = Array.from({ length: fresh.allocated }, (_, i) => `bench-${stamp}-uniform-10-${i}`)
      await reads(service, measure, settings, skus, orderids)
      findings.freshness = await freshness(service.url, service.url, skus, `bench-${stamp}-fresh`)
    }
    if (only.has('holds')) {
      if (!databaseUrl) progress('holds skipped: they are seeded through SQL and need --database-url with --url')
      else await holds(service, measure, settings, databaseUrl, skus)
    }
    if (only.has('backlog')) findings.backlog = await backlog(service, settings)
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

/** The uniform workload, 10 connections, on a service started on embedded PGlite, for `embeddedDurationS`. */
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
    await measure('embedded', 10, skus, { durationS: settings.embeddedDurationS })
  } finally {
    await service?.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/**
 * Adds the skus' batches through the API, then warms the service up (every process of it, `urls`) with
 * allocations it does not record.
 */
export async function catalogue(
  service: Service,
  settings: Settings,
  urls: readonly string[] = [service.url],
): Promise<string[]> {
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
  await allocate({ url: service.url, urls, connections: 10, durationS: settings.warmupS, skus, orderPrefix })
  return skus
}

export function measurer(settings: Settings, service: Service, record: Recorder, storage: Storage): Measure {
  return async (workload, connections, skus, options = {}) => {
    const orderPrefix = `bench-${settings.stamp}-${workload}-${connections}`
    const durationS = options.durationS ?? settings.durationS
    progress(`${workload} on ${storage.storage}, ${connections} connections, up to ${durationS} s`)
    const logsBefore = service.logCounts()
    const activityBefore = await storage.activity()
    const pids = service.allPids ?? [service.pid]
    const cpu = await sampleCpu({ servicePid: service.allPids ?? service.pid, postgresPids: storage.postgresPids })
    const rss = samplePeakRss(pids)
    const load = await (options.load?.() ??
      allocate({
        url: service.url,
        ...(options.urls && { urls: options.urls }),
        ...(options.skuPerProcess && { skuPerProcess: true }),
        connections,
        durationS,
        skus,
        orderPrefix,
        ...(options.stopAfterOutOfStock !== undefined && { stopAfterOutOfStock: options.stopAfterOutOfStock }),
      }))
    const split = await cpu()
    const peaks = rss().filter((mb) => mb !== null)
    const peakRssMB = peaks.length > 0 ? Math.max(...peaks) : null
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
    const consistency = options.load ? null : await storage.check(orderPrefix, load.allocated)
    const run: RunRecord = {
      ...load,
      workload,
      storage: storage.storage,
      peakRssMB,
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
