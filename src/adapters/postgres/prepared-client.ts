import { createHash } from 'node:crypto'
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely'
import type pg from 'pg'
import { Unavailable } from '../../service-layer/ports.ts'

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
      try {
        return new PreparingClient(await pool.connect())
      } catch (error) {
        throw asUnavailable(error)
      }
    },
    end: () => pool.end(),
  }
}

/** A statement with parameters, prepared under its name; one without, sent as it is. */
export function preparedQuery(sql: string, parameters: ReadonlyArray<unknown>): pg.QueryConfig {
  const values = [...parameters]
  return values.length > 0 ? { name: statementName(sql), text: sql, values } : { text: sql }
}

class PreparingClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient
  /** A statement failed for want of the server: the connection goes, rather than back to the pool. */
  #broken = false

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
    // Rows are whatever the statement selects; Kysely gives them their type.
    return (this.#client.query(preparedQuery(sql, parameters)) as unknown as Promise<PostgresQueryResult<R>>).catch(
      (error: unknown) => {
        if (!isConnectionFailure(error)) throw error
        this.#broken = true
        throw asUnavailable(error)
      },
    )
  }

  release(destroy?: boolean): void {
    this.#client.release(this.#broken || destroy)
  }
}

/** SQLSTATE classes and codes that mean the server, not the statement, failed (or was too slow). */
const SERVER_CODES = /^(08...|57P0[123]|53300|57014)$/
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH'])
const DRIVER_MESSAGES =
  /connection terminated|query read timeout|timeout exceeded when trying to connect|not queryable/i

export function isConnectionFailure(error: unknown): boolean {
  if (error instanceof Unavailable) return true
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  if (typeof code === 'string' && (SERVER_CODES.test(code) || SOCKET_CODES.has(code))) return true
  return typeof message === 'string' && DRIVER_MESSAGES.test(message)
}

export function asUnavailable(error: unknown): unknown {
  if (error instanceof Unavailable || !isConnectionFailure(error)) return error
  return new Unavailable(`The database did not answer: ${(error as Error).message}`, { cause: error })
}
