import { PGlite } from '@electric-sql/pglite'
import { query as pgQuery, type Row } from './postgres.ts'

export type Consistency = Readonly<{
  /** Batches with allocated < 0 or allocated > purchased. */
  overAllocated: number
  /** Batches whose allocated quantity differs from the total of their lines. */
  mismatched: number
  /** (orderid, sku) pairs stored more than once. */
  duplicates: number
  /** The run's lines in the database, against the 201 answers the load generator counted. */
  stored: number
  acknowledged: number
  consistent: boolean
}>

type Query = (text: string, params: unknown[]) => Promise<Row[]>

const CHECKS = `
SELECT
  (SELECT count(*)::int FROM batches WHERE allocated < 0 OR allocated > purchased) AS over_allocated,
  (SELECT count(*)::int FROM batches b
     LEFT JOIN (SELECT batch_id, sum(qty) AS qty FROM allocations GROUP BY batch_id) a ON a.batch_id = b.id
    WHERE b.allocated <> coalesce(a.qty, 0)) AS mismatched,
  (SELECT count(*)::int FROM (SELECT 1 FROM allocations GROUP BY orderid, sku HAVING count(*) > 1) d) AS duplicates,
  (SELECT count(*)::int FROM allocations WHERE orderid LIKE $1 || '-%') AS stored`

/**
 * A line can be stored without its 201 arriving (in flight when the load generator stopped, or timed
 * out), never the other way round: an acknowledged line missing from the database is a lost write.
 */
async function check(run: Query, orderPrefix: string, acknowledged: number): Promise<Consistency> {
  const [row = {}] = await run(CHECKS, [orderPrefix])
  const found = {
    overAllocated: Number(row.over_allocated),
    mismatched: Number(row.mismatched),
    duplicates: Number(row.duplicates),
    stored: Number(row.stored),
    acknowledged,
  }
  const consistent =
    found.overAllocated === 0 && found.mismatched === 0 && found.duplicates === 0 && found.stored >= acknowledged
  return { ...found, consistent }
}

export function checkPostgres(databaseUrl: string, orderPrefix: string, acknowledged: number): Promise<Consistency> {
  return check((text, params) => pgQuery(databaseUrl, text, params), orderPrefix, acknowledged)
}

/** Opens the data directory of a stopped embedded service. */
export async function checkPglite(dataDir: string, orderPrefix: string, acknowledged: number): Promise<Consistency> {
  const pglite = new PGlite({ dataDir })
  try {
    return await check(async (text, params) => (await pglite.query<Row>(text, params)).rows, orderPrefix, acknowledged)
  } finally {
    await pglite.close()
  }
}
