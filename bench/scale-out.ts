import { checkPostgres } from './consistency.ts'
import { createDatabase, databaseActivity, serverPids } from './postgres.ts'
import { freshness } from './reads.ts'
import { type Service, serviceGroup, startService } from './service.ts'
import { progress, type Recorder, type Settings } from './settings.ts'
import { catalogue, measurer } from './workloads.ts'

/**
 * Two HTTP processes (`serve --no-relay`) and a separate relay (`relay`) on one fresh PostgreSQL
 * database: uniform allocations at 10 connections, 5 on each HTTP process, against the one-process
 * uniform run of the same bench. Then lines written through one process are read through the other.
 * Then the same allocations again with each sku's sent to one of the processes, as a router that reads
 * the sku would (docs/scaling.md): each process's product cache then stays valid.
 */
export async function scaleOut(settings: Settings, record: Recorder): Promise<void> {
  if (!settings.only.has('scale-out') || settings.serviceUrl) return
  const scratch = await createDatabase(settings.postgresUrl, 'allocation_bench_scale', settings.stamp)
  const parts: Service[] = []
  try {
    const env = { DATABASE_URL: scratch.url }
    // The first process migrates alone; the others start on the migrated schema.
    parts.push(await startService(env, { args: ['serve', '--no-relay'] }))
    parts.push(
      ...(await Promise.all([
        startService(env, { args: ['serve', '--no-relay'] }),
        startService(env, { args: ['relay'] }),
      ])),
    )
    const group = serviceGroup(parts)
    progress(`two HTTP processes at ${group.urls.join(' and ')} and a relay (PostgreSQL, database ${scratch.name})`)
    const skus = await catalogue(group, settings, group.urls)
    const measure = measurer(settings, group, record, {
      storage: 'postgres',
      postgresPids: () => serverPids(settings.postgresUrl, scratch.name),
      activity: () => databaseActivity(settings.postgresUrl, scratch.name),
      check: (orderPrefix, acknowledged) => checkPostgres(scratch.url, orderPrefix, acknowledged),
    })
    const [first = '', second = ''] = group.urls
    await measure('scale-out', 10, skus, {
      urls: group.urls,
      details: { httpProcesses: group.urls.length, relays: 1 },
      after: async () => ({
        freshness: await freshness(first, second, skus, `bench-${settings.stamp}-scale-fresh`),
      }),
    })
    await measure('scale-out-by-sku', 10, skus, {
      urls: group.urls,
      skuPerProcess: true,
      details: { httpProcesses: group.urls.length, relays: 1 },
    })
  } finally {
    await Promise.all(parts.map((p) => p.stop()))
    await scratch.drop()
  }
}
