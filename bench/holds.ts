import pg from 'pg'
import { query } from './postgres.ts'
import { addBatches, batchesOf, LARGE_QTY } from './seed.ts'
import type { Service } from './service.ts'
import { type Measure, progress, type RunRecord, type Settings } from './settings.ts'

/** Seconds between seeding the holds and the first one expiring: the run starts in between. */
const LEAD_S = 2

/**
 * Allocations of the usual skus while holds on 100 other skus expire at `holdExpiryPerSecond`, evenly
 * spread over the run (target 5: no more than 20% slower than without). The holds are written by SQL
 * (as the service would have: held lines on the warehouse batch, its allocated qty raised, the
 * product's version bumped); the service's own sweep releases them.
 *
 * "Without" is measured on the same service just before and just after (`holds-before`, `holds-after`),
 * and the target compares with their mean: this machine's speed drifts within a run by up to 2x over
 * minutes, so the uniform run at the start is no yardstick for a run several minutes later.
 */
export async function holds(
  service: Service,
  measure: Measure,
  settings: Settings,
  databaseUrl: string,
  skus: readonly string[],
): Promise<RunRecord> {
  const holdSkus = Array.from({ length: 100 }, (_, i) => `bench-${settings.stamp}-hold-${String(i).padStart(3, '0')}`)
  await addBatches(
    service.url,
    holdSkus.flatMap((sku) => batchesOf(sku, LARGE_QTY)),
  )
  const rate = settings.holdExpiryPerSecond
  const count = Math.round(rate * (settings.durationS + LEAD_S))
  await measure('holds-before', 10, skus)
  const seeded = await seedHolds(databaseUrl, holdSkus, count, rate)
  progress(`seeded ${count} holds expiring at ${rate}/s from ${LEAD_S} s on`)
  await new Promise((resolve) => setTimeout(resolve, LEAD_S * 1000))
  const during = await measure('holds', 10, skus, {
    details: { holdsSeeded: count, holdsPerSecond: rate },
    after: async () => {
      const [row = {}] = await query(
        databaseUrl,
        `SELECT count(*) FILTER (WHERE status = 'held')::int AS held,
                count(*) FILTER (WHERE status = 'held' AND expires_at < now() - interval '2 seconds')::int AS overdue,
                extract(epoch FROM now() - $2::timestamptz)::float8 AS since_first
           FROM allocations WHERE sku = ANY($1)`,
        [holdSkus, seeded.firstExpiry],
      )
      const released = count - Number(row.held)
      const expiredSoFar = Math.min(count, Math.max(0, Math.floor(Number(row.since_first) * rate)))
      return {
        holdsReleased: released,
        holdsDueByEnd: expiredSoFar,
        holdsOverdueByEnd: Number(row.overdue),
        releasedPerSecond: released / Math.max(0.001, Number(row.since_first)),
      }
    },
  })
  // The last holds are released before the run without them starts again.
  for (let waited = 0; waited < 10_000 && (await stillHeld(databaseUrl, holdSkus)) > 0; waited += 200) {
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await measure('holds-after', 10, skus)
  return during
}

async function stillHeld(databaseUrl: string, skus: readonly string[]): Promise<number> {
  const [row = {}] = await query(
    databaseUrl,
    `SELECT count(*)::int AS held FROM allocations WHERE sku = ANY($1) AND status = 'held'`,
    [skus],
  )
  return Number(row.held)
}

async function seedHolds(databaseUrl: string, skus: readonly string[], count: number, rate: number) {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query('BEGIN')
    const { rows } = await client.query(
      `WITH holds AS (
         INSERT INTO allocations (orderid, sku, qty, status, batch_id, expires_at)
         SELECT 'hold-' || g, b.sku, 1, 'held', b.id,
                clock_timestamp() + make_interval(secs => $3 + g::float8 / $4)
           FROM generate_series(0, $2 - 1) AS g
           JOIN batches b ON b.sku = ($1::text[])[1 + g % array_length($1, 1)] AND b.eta IS NULL
         RETURNING sku, qty, expires_at
       ), per_sku AS (
         SELECT sku, sum(qty)::int AS qty, count(*)::int AS n FROM holds GROUP BY sku
       ), raised AS (
         UPDATE batches b SET allocated = allocated + p.qty FROM per_sku p WHERE b.sku = p.sku AND b.eta IS NULL
       ), bumped AS (
         UPDATE products SET version_number = version_number + p.n FROM per_sku p WHERE products.sku = p.sku
       )
       SELECT min(expires_at) AS first_expiry FROM holds`,
      [skus, count, LEAD_S, rate],
    )
    await client.query('COMMIT')
    return { firstExpiry: rows[0]?.first_expiry as Date }
  } catch (error) {
    await client.query('ROLLBACK')
    throw error
  } finally {
    await client.end()
  }
}
