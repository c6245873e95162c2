import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import type pg from 'pg'
import type { Sent } from './redis-mixed-messages.ts'
import { COMMANDS, DEAD_LETTER, fieldsOf } from './redis-mixed-redis.ts'
import type { Body } from './redis-mixed-seeded.ts'

export type State = Awaited<ReturnType<typeof stateOf>>
export type OutboxRow = { id: number; payload: Body & { type: string } }

export async function stateOf(database: pg.Client) {
  const batches = await database.query<{
    ref: string
    sku: string
    eta: string | null
    purchased: number
    allocated: number
  }>('select ref, sku, eta::text, purchased, allocated from batches order by id')
  const lines = await database.query<{
    orderid: string
    sku: string
    qty: number
    status: string
    batchref: string | null
  }>(
    `select a.orderid, a.sku, a.qty, a.status, b.ref as batchref
     from allocations a left join batches b on b.id = a.batch_id order by a.id`,
  )
  const outbox = await database.query<OutboxRow>('select id::int, payload from outbox order by id')
  const handled = await database.query<{ id: string }>('select id from handled_messages')
  return { batches: batches.rows, lines: lines.rows, outbox: outbox.rows, handled: handled.rows.map((r) => r.id) }
}

/** How many entries of `sent` are neither recorded as handled nor dead-lettered yet. */
export async function unaccounted(sent: readonly Sent[], database: pg.Client, redis: Redis): Promise<number> {
  const { rows } = await database.query<{ id: string }>('select id from handled_messages')
  const done = new Set(rows.map((r) => r.id.slice(COMMANDS.length + 1)))
  for (const [, fields] of await redis.xrange(DEAD_LETTER, '-', '+')) done.add(fieldsOf(fields).id ?? '')
  return sent.filter((s) => !done.has(s.id)).length
}

/** Waits for every hold to be released (they last at most 3 s); answers those held 2 s past their expiry. */
export async function holdsReleased(database: pg.Client): Promise<string[]> {
  await waitFor(
    async () => (await database.query("select 1 from allocations where status = 'held'")).rowCount === 0,
    10_000,
  )
  const { rows } = await database.query<{ orderid: string; sku: string; expires: string }>(
    `select orderid, sku, expires_at::text as expires from allocations
     where status = 'held' and expires_at < now() - interval '2 seconds'`,
  )
  return rows.map((r) => `${r.orderid} ${r.sku} is held, expired at ${r.expires}`)
}

/** Events of batches by what they set, `qty <ref> <qty>`, `eta <ref> <eta>`, `created <ref>`, counted. */
export function changesOf(outbox: readonly OutboxRow[]): (key: string) => number {
  const counts = new Map<string, number>()
  for (const { payload: e } of outbox) {
    const key =
      e.type === 'BatchQuantityChanged'
        ? `qty ${e.ref} ${e.qty}`
        : e.type === 'BatchEtaChanged'
          ? `eta ${e.ref} ${e.eta}`
          : e.type === 'BatchCreated'
            ? `created ${e.ref}`
            : null
    if (key) counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return (key) => counts.get(key) ?? 0
}

export async function waitFor(condition: () => Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) if (await condition()) return true
  return condition()
}
