import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestDatabase, type TestDatabase } from './support.ts'

/** One value of each kind the service reads, as node-postgres reads it from a server. */
const VALUES = {
  big: 9007199254740991,
  small: 42,
  day: '2027-01-02',
  instant: new Date('2027-01-02T03:04:05.678Z'),
  document: { a: [1, 'x'], b: null },
  yes: true,
  exact: '1.50',
  ratio: 1.5,
  names: ['a', 'b'],
  nothing: null,
  text: 'it’s "quoted", with a comma',
}

describe('values read from the embedded database', () => {
  let embedded: TestDatabase | null
  let server: TestDatabase | null

  beforeAll(async () => {
    embedded = await openTestDatabase('pglite')
    server = await openTestDatabase('postgres')
  })
  afterAll(async () => {
    await embedded?.drop()
    await server?.drop()
  })

  const read = (database: TestDatabase | null, label: string) => {
    if (!database) throw new Error('no database')
    const value = <T>(v: T) => (label === 'with parameters' ? sql`${v}` : sql.lit(v))
    return sql<typeof VALUES>`
      select 9007199254740991::bigint as big, ${value(42)}::int as small,
             '2027-01-02'::date as day, '2027-01-02T03:04:05.678Z'::timestamptz as instant,
             '{"a": [1, "x"], "b": null}'::jsonb as document, true as yes, 1.50::numeric as exact,
             1.5::float8 as ratio, array['a', 'b'] as names, null::text as nothing,
             ${value(VALUES.text)}::text as text`.execute(database.database.db)
  }

  // Without parameters a statement goes in the simple protocol; with them, bound to a prepared plan.
  for (const label of ['with parameters', 'without']) {
    it(`are those a server gives, ${label}`, async () => {
      const fromEmbedded = await read(embedded, label)
      expect(fromEmbedded.rows).toEqual([VALUES])
      expect((await read(server, label)).rows).toEqual(fromEmbedded.rows)
    })
  }
})
