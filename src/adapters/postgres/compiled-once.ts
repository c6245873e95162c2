import type { Compilable, CompiledQuery, Kysely } from 'kysely'
import type { Database } from './database.ts'
import type { Schema } from './schema.ts'

type Executor = Kysely<Schema>

/** Stands in for the i-th argument while a compiled-once query is built. */
class Placeholder {
  readonly index: number
  constructor(index: number) {
    this.index = index
  }
}

/**
 * A query whose shape never varies, built and compiled to SQL once instead of on every run: for a read
 * answered from an index, Kysely's building and compiling cost the service more than the database's
 * answer. `build` gets stand-ins for the arguments and may only place them where values go; each run
 * puts the arguments in their place. It is compiled by the first database it runs on: both storage
 * modes compile PostgreSQL alike, and no Kysely plugin is in use to rewrite it per database.
 */
export function compiledOnce<A extends unknown[], R>(
  arity: A['length'],
  build: (db: Executor, ...args: A) => Compilable<R>,
): (db: Executor, ...args: A) => Promise<R[]> {
  const compile = compiler(arity, build)
  return async (db, ...args) => (await db.executeQuery(compile(db, args))).rows
}

/**
 * As `compiledOnce`, for a read outside any transaction, run by `Database.select`: straight on the
 * driver, and answered once what it read is durable.
 */
export function selectedOnce<A extends unknown[], R>(
  arity: A['length'],
  build: (db: Executor, ...args: A) => Compilable<R>,
): (database: Database, ...args: A) => Promise<R[]> {
  const compile = compiler(arity, build)
  return (database, ...args) => database.select(compile(database.db, args))
}

function compiler<A extends unknown[], R>(
  arity: A['length'],
  build: (db: Executor, ...args: A) => Compilable<R>,
): (db: Executor, args: A) => CompiledQuery<R> {
  let compiled: CompiledQuery<R> | undefined
  return (db, args) => {
    compiled ??= build(db, ...(Array.from({ length: arity }, (_, i) => new Placeholder(i)) as A)).compile()
    const parameters = compiled.parameters.map((p) => (p instanceof Placeholder ? args[p.index] : p))
    return { ...compiled, parameters }
  }
}
