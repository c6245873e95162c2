import { isDeepStrictEqual } from 'node:util'
import type { Body, Sent } from './mixed-load.ts'
import type { Client } from './support.ts'

/** What the state is read from: a PostgreSQL client, or PGlite on the embedded service's data directory. */
export type Tables = Readonly<{ query<T>(sql: string): Promise<{ rows: T[] }> }>

/** A line still held, and when its hold expires. */
export type Hold = Readonly<{ orderid: string; sku: string; expiresAt: Date }>

/** Waits for every hold to be released (they expire within 3 s of the load); answers those held past expiry + 2 s. */
export async function holdsSettled(held: () => Promise<readonly Hold[]>): Promise<string[]> {
  const deadline = Date.now() + 20_000
  for (;;) {
    const now = Date.now()
    const holds = await held()
    if (holds.length === 0 || now > deadline) {
      return holds
        .filter((h) => h.expiresAt.getTime() < now - 2000)
        .map((h) => `${h.orderid} ${h.sku} is held, expired at ${h.expiresAt.toISOString()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

export const heldInTables = (database: Tables) => async (): Promise<Hold[]> =>
  (await database.query<Hold>(`select orderid, sku, expires_at as "expiresAt" from allocations where status = 'held'`))
    .rows

/** The held lines of `skus`, read through the service. */
export const heldOverHttp = (api: Client, skus: readonly string[]) => async (): Promise<Hold[]> => {
  const holds: Hold[] = []
  for (const sku of skus) {
    for (let after = 0; ; ) {
      const page = await api.get(`/products/${sku}/lines?status=held&limit=1000${after ? `&after=${after}` : ''}`)
      if (page.status !== 200) throw new Error(`GET /products/${sku}/lines answered ${page.status}`)
      for (const { orderid, expiresAt } of page.body.lines) holds.push({ orderid, sku, expiresAt: new Date(expiresAt) })
      if (!page.body.next) break
      after = page.body.next
    }
  }
  return holds
}

export type State = Awaited<ReturnType<typeof stateOf>>

/** The batches, the lines (with their batch's ref and eta) and the outbox, in the order they were made. */
export async function stateOf(database: Tables) {
  const batches = await database.query<{
    id: number
    ref: string
    sku: string
    eta: string | null
    purchased: number
    allocated: number
  }>('select id::int, ref, sku, eta::text, purchased, allocated from batches order by id')
  const lines = await database.query<{
    id: number
    orderid: string
    sku: string
    qty: number
    status: string
    batchref: string | null
    eta: string | null
    expires_at: Date | null
  }>(
    `select a.id::int, a.orderid, a.sku, a.qty, a.status, b.ref as batchref, b.eta::text, a.expires_at
     from allocations a left join batches b on b.id = a.batch_id order by a.id`,
  )
  const outbox = await database.query<{ id: number; xid: string; payload: Body & { type: string }; created: Date }>(
    'select id::int, xid::text, payload, created_at as created from outbox order by id',
  )
  return { batches: batches.rows, lines: lines.rows, outbox: outbox.rows }
}

/** Every batch's allocated qty is the sum of its allocated and held lines, and no more than it has. */
export function oversold({ batches, lines }: State): string[] {
  return batches.flatMap((b) => {
    const onIt = lines.filter((l) => l.batchref === b.ref).reduce((total, l) => total + l.qty, 0)
    return onIt === b.allocated && b.allocated <= b.purchased && b.allocated >= 0
      ? []
      : [`${b.ref}: purchased ${b.purchased}, allocated ${b.allocated}, lines on it ${onIt}`]
  })
}

export function fittingBackorders({ batches, lines }: State): string[] {
  return lines.flatMap((l) => {
    if (l.status !== 'backordered') return []
    const fits = batches.find((b) => b.sku === l.sku && b.purchased - b.allocated >= l.qty)
    return fits ? [`${l.orderid} ${l.sku} waits for ${l.qty}; ${fits.ref} has ${fits.purchased - fits.allocated}`] : []
  })
}

/** GET /events from the start answers the outbox, in order (once no transaction is left to finish). */
export async function sameEventsOverHttp(api: Client, outbox: State['outbox']): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const problems = eventsDiffer(await eventsOverHttp(api), outbox)
    if (problems.length === 0 || attempt >= 10) return problems
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** Every event GET /events answers from the start, page by page; or the answer that stopped the reading. */
export async function eventsOverHttp(api: Client): Promise<Body[] | string> {
  const read: Body[] = []
  for (let after = 0; ; ) {
    const page = await api.get(`/events?after=${after}&limit=1000`)
    if (page.status !== 200) return `GET /events?after=${after} answered ${page.status}`
    read.push(...page.body.events)
    if (page.body.events.length === 0) return read
    after = page.body.next
  }
}

export function eventsDiffer(read: Body[] | string, outbox: State['outbox']): string[] {
  if (typeof read === 'string') return [read]
  const problems = outbox.flatMap((row, i) => {
    const expected = { id: row.id, ...row.payload }
    return isDeepStrictEqual(read[i], expected)
      ? []
      : [`event ${i}: ${JSON.stringify(read[i])} for ${JSON.stringify(expected)}`]
  })
  if (read.length > outbox.length) problems.push(`${read.length - outbox.length} events more than the outbox`)
  return problems
}

/** GET /orders, /allocations, /products/{sku}, /products/{sku}/lines and /batches agree with the tables. */
export async function checkReads(
  api: Client,
  state: State,
  sent: readonly Sent[],
  skus: readonly string[],
): Promise<string[]> {
  return readsDiffer(await readsOf(api, sent, skus), state, sent, skus)
}

const orderidsOf = (sent: readonly Sent[]) => [
  ...new Set(sent.flatMap(({ op }) => (op.body?.orderid ? [String(op.body.orderid)] : []))),
]

/**
 * What the service answers, by request, to the reads of every order and batch in `sent` and of each of
 * `skus` (a sku's lines: every page, as one list).
 */
export async function readsOf(api: Client, sent: readonly Sent[], skus: readonly string[]) {
  const reads = new Map<string, unknown>()
  await inParallel(orderidsOf(sent), 16, async (orderid) => {
    const order = await api.get(`/orders/${orderid}`)
    reads.set(`GET /orders/${orderid}`, order.status === 200 ? order.body : order.body.code)
    const book = await api.get(`/allocations/${orderid}?include=qty`)
    reads.set(`GET /allocations/${orderid}`, book.status === 200 ? book.body : book.status)
  })
  for (const sku of skus) {
    const read: unknown[] = []
    for (let after = 0; ; ) {
      const page = await api.get(`/products/${sku}/lines?limit=100${after ? `&after=${after}` : ''}`)
      read.push(...(page.body.lines ?? [page.status]))
      if (!page.body.next) break
      after = page.body.next
    }
    reads.set(`GET /products/${sku}/lines`, read)
    reads.set(`GET /products/${sku}`, (await api.get(`/products/${sku}`)).body)
  }
  const refs = new Set(sent.flatMap(({ op }) => (op.path === '/batches' ? [String(op.body?.ref)] : [])))
  await inParallel([...refs], 16, async (ref) => {
    const batch = await api.get(`/batches/${ref}`)
    reads.set(`GET /batches/${ref}`, batch.status === 200 ? batch.body : batch.status)
  })
  return reads
}

export function readsDiffer(
  reads: ReadonlyMap<string, unknown>,
  state: State,
  sent: readonly Sent[],
  skus: readonly string[],
): string[] {
  const problems: string[] = []
  const view = (l: State['lines'][number]) => ({
    orderid: l.orderid,
    sku: l.sku,
    qty: l.qty,
    status: l.status,
    batchref: l.batchref,
    eta: l.eta,
    expiresAt: l.expires_at?.toISOString() ?? null,
  })
  const differs = (what: string, expected: unknown) => {
    const read = reads.get(what)
    if (!isDeepStrictEqual(read, expected)) {
      problems.push(`${what} read ${JSON.stringify(read)}, the tables have ${JSON.stringify(expected)}`)
    }
  }
  for (const orderid of orderidsOf(sent)) {
    const lines = state.lines.filter((l) => l.orderid === orderid)
    differs(`GET /orders/${orderid}`, lines.length > 0 ? { orderid, lines: lines.map(view) } : 'unknown_order')
    const allocated = lines
      .filter((l) => l.status === 'allocated')
      .map(({ sku, batchref, qty }) => ({ sku, batchref, qty }))
    differs(`GET /allocations/${orderid}`, allocated.length > 0 ? allocated : 404)
  }
  const batchesRead = new Set<string>()
  for (const sku of skus) {
    const lines = state.lines.filter((l) => l.sku === sku)
    differs(`GET /products/${sku}/lines`, lines.map(view))
    const batches = state.batches
      .filter((b) => b.sku === sku)
      .sort((a, b) => (a.eta ?? '').localeCompare(b.eta ?? '') || a.id - b.id)
      .map(({ ref, eta, purchased, allocated }) => ({
        ref,
        sku,
        eta,
        purchased,
        allocated,
        available: purchased - allocated,
      }))
    const sum = (pick: (x: (typeof batches)[number]) => number) => batches.reduce((total, b) => total + pick(b), 0)
    const waiting = (status: string) => lines.filter((l) => l.status === status).reduce((total, l) => total + l.qty, 0)
    const totals = {
      purchased: sum((b) => b.purchased),
      allocated: sum((b) => b.allocated),
      available: sum((b) => b.available),
      backordered: waiting('backordered'),
      held: waiting('held'),
    }
    differs(`GET /products/${sku}`, { sku, batches, totals })
    for (const batch of batches) {
      differs(`GET /batches/${batch.ref}`, batch)
      batchesRead.add(`GET /batches/${batch.ref}`)
    }
  }
  // A batch whose creation had no answer may not exist.
  for (const what of reads.keys()) if (what.startsWith('GET /batches/') && !batchesRead.has(what)) differs(what, 404)
  return problems
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item)
    }),
  )
}
