import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase } from '../../src/adapters/postgres/database.ts'
import { migrateToLatest, migrateUpTo } from '../../src/adapters/postgres/migrator.ts'
import { createDatabase, createDataDir, postgresAvailable } from '../support/servers.ts'
import { type Mode, modes } from './support.ts'

/** A database of its own for the describe block, empty of any migration; `null` where its server is missing. */
function freshDatabase(mode: Mode): () => Database | null {
  let database: Database | null = null
  let drop: () => Promise<void> = async () => {}
  beforeAll(async () => {
    if (mode === 'postgres' && !(await postgresAvailable())) return
    const place = mode === 'postgres' ? await createDatabase() : await createDataDir()
    drop = place.drop
    database = openDatabase({
      databaseUrl: 'url' in place ? place.url : null,
      dataDir: 'dir' in place ? place.dir : '',
      poolSize: 2,
      onConnectionError: () => {},
    })
  })
  afterAll(async () => {
    await database?.close()
    await drop()
  })
  return () => database
}

describe.each(modes)('migrating to line states (%s)', (mode: Mode) => {
  const opened = freshDatabase(mode)

  it('keeps as a backorder a line a crash left deallocated from a shrunk batch, and moves its version', async (ctx) => {
    const database = opened()
    if (!database) return ctx.skip()
    const { db } = database
    await migrateUpTo(db, '0002-outbox-delivery')
    await sql`insert into products (sku, version_number) values ('LAMP', 7)`.execute(db)
    await sql`insert into batches (ref, sku, purchased, allocated) values ('b1', 'LAMP', 4, 2)`.execute(db)
    await sql`insert into allocations (orderid, sku, qty, batch_id)
      select 'kept', 'LAMP', 2, id from batches where ref = 'b1'`.execute(db)
    const deallocated = (orderid: string, delivered: boolean) =>
      sql`insert into outbox (sku, type, payload, delivered_at) values ('LAMP', 'Deallocated',
        ${JSON.stringify({ type: 'Deallocated', orderid, sku: 'LAMP', qty: 6, batchref: 'b1', reason: 'batch-shrunk' })}::jsonb,
        ${delivered ? sql`now()` : sql`null`})`.execute(db)
    await deallocated('stranded', false)
    await deallocated('moved-long-ago', true)
    await deallocated('kept', false)

    expect(await migrateToLatest(db)).toContain('0003-line-states')
    const lines = await sql<{ orderid: string; status: string; batch_id: number | null; qty: number }>`
      select orderid, status, batch_id, qty from allocations order by id`.execute(db)
    expect(lines.rows.map(({ orderid, status, qty }) => [orderid, status, qty])).toEqual([
      ['kept', 'allocated', 2],
      ['stranded', 'backordered', 6],
    ])
    const version = await sql<{ version_number: number }>`select version_number from products`.execute(db)
    expect(version.rows[0]?.version_number).toBe(8)
  })
})

describe.each(modes)('migrating to pending deliveries (%s)', (mode: Mode) => {
  const opened = freshDatabase(mode)

  it('moves the undelivered events over with their attempts and due times, and leaves the delivered ones', async (ctx) => {
    const database = opened()
    if (!database) return ctx.skip()
    const { db } = database
    await migrateUpTo(db, '0005-outbox-payload-statistics')
    const event = (orderid: string, delivered: boolean, attempts: number) =>
      sql`insert into outbox (sku, type, payload, delivered_at, attempts, due_at) values ('LAMP', 'Allocated',
        ${JSON.stringify({ type: 'Allocated', orderid, sku: 'LAMP', qty: 1, batchref: 'b1' })}::jsonb,
        ${delivered ? sql`now()` : sql`null`}, ${attempts}, '2030-01-01T00:00:00Z')`.execute(db)
    await event('delivered', true, 1)
    await event('failing', false, 3)
    await event('new', false, 0)

    expect(await migrateUpTo(db, '0006-pending-deliveries')).toEqual(['0006-pending-deliveries'])
    const pending = await sql<{ orderid: string; sku: string; attempts: number; due: string }>`
      select o.payload->>'orderid' as orderid, p.sku, p.attempts, to_char(p.due_at at time zone 'UTC', 'YYYY-MM-DD') as due
      from pending_deliveries p join outbox o using (id) order by p.id`.execute(db)
    expect(pending.rows).toEqual([
      { orderid: 'failing', sku: 'LAMP', attempts: 3, due: '2030-01-01' },
      { orderid: 'new', sku: 'LAMP', attempts: 0, due: '2030-01-01' },
    ])
    const events = await sql<{ n: number }>`select count(*)::int as n from outbox`.execute(db)
    expect(events.rows[0]?.n).toBe(3)
  })
})
