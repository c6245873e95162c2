import { createHash } from 'node:crypto'
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely'
import type pg from 'pg'

const names = new Map<string, string>()

function statementName(text: string): string {
  let name = names.get(text)
  if (!name) {
    name = `s${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
    names.set(text, name)
  }
  return name
}

/**
 * Hands Kysely clients that run every parameterised query as a named prepared statement, so the server
 * parses and plans each statement shape once per connection instead of on every call. The repository
 * keeps the shapes few (arrays instead of `in (...)` lists).
 */
export function preparingPool(pool: pg.Pool): PostgresPool {
  return {
    options: pool.options,
    async connect() {
      return new PreparingClient(await pool.connect())
    },
    end: () => pool.end(),
  }
}

class PreparingClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient

  constructor(client: pg.PoolClient) {
    this.#client = client
  }

  query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>
  query<R>(
    sql: string | PostgresCursor<R>,
    parameters: ReadonlyArray<unknown> = [],
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sql !== 'string') throw new Error('Streaming queries are not used by this service')
    const values = [...parameters]
    const query = values.length > 0 ? { name: statementName(sql), text: sql, values } : { text: sql }
    // Rows are whatever the statement selects; Kysely gives them their type.
    return this.#client.query(query) as unknown as Promise<PostgresQueryResult<R>>
  }

  release(destroy?: boolean): void {
    this.#client.release(destroy)
  }
}
