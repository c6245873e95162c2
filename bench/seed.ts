import pg from 'pg'

/** Large enough that the uniform workloads never run a sku out of stock, history included. */
export const LARGE_QTY = 1_000_000

const DAY_MS = 86_400_000

/** The three batches of a sku, in allocation order: in the warehouse, arriving in 30 and in 60 days. */
export function batchesOf(sku: string, qty: number, today = new Date()) {
  const eta = (days: number) => new Date(today.getTime() + days * DAY_MS).toISOString().slice(0, 10)
  return [
    { ref: `${sku}-warehouse`, sku, qty, eta: null },
    { ref: `${sku}-in-30-days`, sku, qty, eta: eta(30) },
    { ref: `${sku}-in-60-days`, sku, qty, eta: eta(60) },
  ]
}

/**
 * Adds the batches through the API, a few skus at a time and the batches of one sku one after another:
 * the first batches of a new sku sent together race to create its product, and the loser's rollback
 * would be counted in the next measured run (PostgreSQL reports an idle connection's counts up to 10 s
 * late).
 */
export async function addBatches(url: string, batches: ReturnType<typeof batchesOf>): Promise<void> {
  const queue = [...Map.groupBy(batches, (batch) => batch.sku).values()]
  const worker = async () => {
    for (let group = queue.shift(); group; group = queue.shift()) {
      for (const batch of group) {
        const response = await fetch(`${url}/batches`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(batch),
        })
        if (response.status !== 201) {
          throw new Error(`POST /batches ${batch.ref} answered ${response.status}: ${await response.text()}`)
        }
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
}

export type HistorySeed = Readonly<{ lines: number; seconds: number }>

/**
 * Writes past allocations straight into the service's database, as the service would have: each line on
 * the sku's warehouse batch, the batch's allocated quantity raised by the lines' total, the product's
 * version bumped, and a delivered `Allocated` event in the outbox. Through the API it would take minutes.
 */
export async function seedHistory(databaseUrl: string, linesBySku: ReadonlyMap<string, number>): Promise<HistorySeed> {
  const started = performance.now()
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const skus = [...linesBySku.keys()]
    const counts = [...linesBySku.values()]
    await client.query('BEGIN')
    const inserted = await client.query(HISTORY_SQL, [skus, counts])
    await client.query(
      `UPDATE batches b SET allocated = (SELECT coalesce(sum(qty), 0) FROM allocations a WHERE a.batch_id = b.id)
        WHERE b.sku = ANY($1)`,
      [skus],
    )
    await client.query(
      `UPDATE products p SET version_number = version_number + s.n
         FROM unnest($1::text[], $2::int[]) AS s(sku, n) WHERE p.sku = s.sku`,
      [skus, counts],
    )
    await client.query('COMMIT')
    // A database that gathered its history over time has had it vacuumed and analysed as it came.
    // Without this the run also measures the autovacuum that 200,000 rows written at once set off, rather
    // than only what history costs each allocation.
    await client.query('VACUUM (ANALYZE) allocations, outbox, batches, products')
    return { lines: inserted.rowCount ?? 0, seconds: (performance.now() - started) / 1000 }
  } catch (error) {
    await client.query('ROLLBACK')
    throw error
  } finally {
    await client.end()
  }
}

const HISTORY_SQL = `
WITH lines AS (
  INSERT INTO allocations (orderid, sku, qty, batch_id)
  SELECT 'history-' || s.sku || '-' || g, s.sku, 1 + floor(random() * 3)::int, b.id
    FROM unnest($1::text[], $2::int[]) AS s(sku, n)
    JOIN batches b ON b.sku = s.sku AND b.eta IS NULL
    CROSS JOIN LATERAL generate_series(1, s.n) AS g
  RETURNING orderid, sku, qty, batch_id
)
INSERT INTO outbox (sku, type, payload)
SELECT l.sku, 'Allocated',
       jsonb_build_object('type', 'Allocated', 'orderid', l.orderid, 'sku', l.sku, 'qty', l.qty, 'batchref', b.ref)
  FROM lines l JOIN batches b ON b.id = l.batch_id`
