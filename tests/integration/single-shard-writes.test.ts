import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Service } from '../../src/bootstrap.ts'
import type { Clock } from '../../src/service-layer/ports.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { type Mode, modes, openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

/** The tables distributed by `sku` on Citus (docs/scaling.md): a write to one of them must name its sku. */
const SKU_TABLES = ['products', 'batches', 'allocations', 'outbox', 'pending_deliveries']

/**
 * The writes allowed to span skus, each with its reason (docs/scaling.md says what they become on Citus).
 * Matched on the statement's own text, from its verb to its end.
 */
const MULTI_SKU_WRITES: ReadonlyArray<readonly [RegExp, string]> = [
  [
    /^update pending_deliveries set attempts = attempts \+ 1, due_at = /,
    "the relay's sweep leases due events of every sku",
  ],
  [/^delete from pending_deliveries where id = any\(/, 'the delivery marks, coalesced across skus'],
  [
    /^delete from outbox where id > \(select pruned_through from horizon\) and id <= /,
    'the retention sweep removes delivered events of every sku past their age',
  ],
]

type Write = Readonly<{ verb: 'insert' | 'update' | 'delete'; table: string; text: string }>

/** Every INSERT, UPDATE and DELETE in `sql`, those inside a WITH included, each with its own text. */
export function writesIn(sql: string): Write[] {
  const text = sql.toLowerCase().replaceAll('"', '').replaceAll(/\s+/g, ' ')
  const writes: Write[] = []
  for (const match of text.matchAll(/\b(insert into|update|delete from) (\w+)\b/g)) {
    const verb = match[1]?.split(' ')[0] as Write['verb']
    // The statement runs until the parenthesis that closes its WITH part, or to the end.
    let depth = 0
    let end = match.index
    for (; end < text.length && depth >= 0; end++) depth += text[end] === '(' ? 1 : text[end] === ')' ? -1 : 0
    writes.push({ verb, table: match[2] ?? '', text: text.slice(match.index, depth < 0 ? end - 1 : end).trim() })
  }
  return writes
}

/** Why `write` may not run on one shard, or `null` when it names the sku as Citus needs to route it. */
export function shardProblem({ verb, table, text }: Write): string | null {
  if (!SKU_TABLES.includes(table)) return null
  if (MULTI_SKU_WRITES.some(([pattern]) => pattern.test(text))) return null
  if (verb === 'insert') {
    const columns =
      /^insert into \w+ \(([^)]*)\)/
        .exec(text)?.[1]
        ?.split(',')
        .map((c) => c.trim()) ?? []
    return columns.includes('sku') ? null : `inserts into ${table} without its sku column`
  }
  const where = topLevelWhere(text)
  if (where === null) return `${verb}s ${table} without a where clause`
  // Only the clause's own conditions count, not those of a subquery within it.
  const sku = new RegExp(`(^|[^\\w.])(${table}\\.)?sku = `)
  return sku.test(where) ? null : `${verb}s ${table} without filtering on its sku`
}

/** The conditions of the statement's own WHERE clause, without what is in parentheses (subqueries). */
function topLevelWhere(text: string): string | null {
  let depth = 0
  let where: string | null = null
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string
    depth += char === '(' ? 1 : char === ')' ? -1 : 0
    if (where !== null) {
      if (depth === 0 && char !== ')') where += char
    } else if (depth === 0 && text.startsWith(' where ', i)) where = ' '
  }
  return where
}

describe('the single-shard rule checker', () => {
  it('finds a write that does not name its sku, inside a WITH or alone', () => {
    const problems = (sql: string) => writesIn(sql).map(shardProblem)
    expect(problems('update batches set allocated = 1 where id = $1')).toEqual([
      'updates batches without filtering on its sku',
    ])
    expect(
      problems('with a as (delete from allocations where orderid = $1 and exists (select sku = 1)) select 1'),
    ).toEqual(['deletes allocations without filtering on its sku'])
    expect(problems('insert into outbox (type, payload) values ($1, $2)')).toEqual([
      'inserts into outbox without its sku column',
    ])
    expect(problems('update products set sku = $1 where version_number = $2')).toEqual([
      'updates products without filtering on its sku',
    ])
    expect(problems('update "batches" set "eta" = $1 where "batches"."sku" = $2 and "id" = $3')).toEqual([null])
  })
})

/** Time that the test moves, so that a hold expires when it says. */
const clock: Clock & { time: number } = { time: Date.parse('2027-01-04T09:00:00Z'), now: () => clock.time }

describe.each(modes)('every write the service sends names its sku (%s)', (mode: Mode) => {
  let test: TestDatabase | null
  let service: Service

  beforeAll(async () => {
    test = await openTestDatabase(mode)
    if (test) service = serviceOn(test.database, { clock })
  })
  afterAll(async () => test?.drop())

  it('in every command, event delivery and sweep of a working day', async (ctx) => {
    if (!test) return ctx.skip()
    test.statements.length = 0
    const { bus } = service
    const sku = randomSku()
    const [early, late, extra] = [randomBatchref('early'), randomBatchref('late'), randomBatchref('extra')]
    const [o1, o2, o3, o4] = [randomOrderid('1'), randomOrderid('2'), randomOrderid('3'), randomOrderid('4')]
    await bus.handle({ type: 'CreateBatch', ref: early, sku, qty: 10, eta: null })
    await bus.handle({ type: 'CreateBatch', ref: late, sku, qty: 10, eta: '2027-02-01' })
    await bus.handle({ type: 'Allocate', orderid: o1, sku, qty: 6 })
    await bus.handle({ type: 'Allocate', orderid: o1, sku, qty: 6 })
    await bus.handle({ type: 'Allocate', orderid: o2, sku, qty: 4, holdSeconds: 60 })
    await bus.handle({ type: 'Allocate', orderid: o3, sku, qty: 30, backorder: true })
    await bus.handle({ type: 'Allocate', orderid: o4, sku, qty: 50 })
    await bus.handle({ type: 'ChangeBatch', ref: early, qty: 5, eta: { to: '2027-01-10' } })
    await bus.handle({ type: 'ChangeBatchEta', ref: late, eta: null })
    await bus.handle({ type: 'ChangeBatchQuantity', ref: late, qty: 40 })
    clock.time += 120_000
    await service.relay.sweep()
    await bus.handle({ type: 'Deallocate', orderid: o1, sku })
    await bus.handleOnce(`message-${randomOrderid()}`, { type: 'Allocate', orderid: o4, sku, qty: 1 })
    await bus.handle({
      type: 'CreateBatches',
      batches: [
        { ref: extra, sku, qty: 5, eta: null },
        { ref: randomBatchref(), sku: randomSku(), qty: 5, eta: null },
      ],
    })
    await bus.handle({ type: 'CreateBatch', ref: randomBatchref(), sku: randomSku(), qty: 1, eta: null })

    const writes = test.statements.flatMap(writesIn)
    // The day wrote to every sku table, by every verb it uses.
    const kinds = new Set(writes.map((w) => `${w.verb} ${w.table}`))
    for (const kind of ['insert products', 'insert batches', 'update batches', 'insert allocations']) {
      expect(kinds).toContain(kind)
    }
    for (const kind of ['update allocations', 'delete allocations', 'update products', 'insert outbox']) {
      expect(kinds).toContain(kind)
    }
    expect(writes.flatMap((w) => (shardProblem(w) ? [`${shardProblem(w)}: ${w.text}`] : []))).toEqual([])
  })
})
