import { sql } from 'kysely'
import { type PeriodicSweep, periodicSweep } from '../../service-layer/periodic-sweep.ts'
import type { Logger } from '../../service-layer/ports.ts'
import { type Database, inTurn } from './database.ts'

type Due = Readonly<{ schema: string; table: string; vacuum: boolean; analyze: boolean }>

/**
 * Does for the embedded database what autovacuum does for a server. PGlite runs PostgreSQL as one
 * process with no background workers, so nothing else would: its tables would keep every dead row
 * version (each event's delivery mark leaves one), its plans would keep the statistics of an empty
 * database, and after about two billion transactions, rows never frozen would vanish (transaction id
 * wraparound; at 1,000 writes a second that is under a month). Each sweep picks the tables autovacuum
 * would pick, by PostgreSQL's own settings (dead rows, rows inserted, rows changed since the last
 * ANALYZE, age of the oldest unfrozen transaction id, catalogs included), and vacuums or analyzes them
 * one at a time, each in one statement the database thread runs while the others wait: a pause in proportion to what changed since the last sweep,
 * since VACUUM skips the pages its visibility map marks as unchanged.
 */
export function embeddedUpkeep(
  database: Database,
  logger: Logger,
  options: Readonly<{ intervalMs?: number; freezeMaxAge?: number }> = {},
): PeriodicSweep {
  async function dueTables(): Promise<Due[]> {
    return inTurn(database, async (db) => {
      // Statistics reach the views when the process flushes them, at most once a second otherwise.
      await sql`select pg_stat_force_next_flush()`.execute(db)
      const { rows } = await sql<Due>`
        with settings as (
          select current_setting('autovacuum_vacuum_threshold')::float8 as dead_base,
                 current_setting('autovacuum_vacuum_scale_factor')::float8 as dead_scale,
                 current_setting('autovacuum_vacuum_insert_threshold')::float8 as inserted_base,
                 current_setting('autovacuum_vacuum_insert_scale_factor')::float8 as inserted_scale,
                 current_setting('autovacuum_analyze_threshold')::float8 as changed_base,
                 current_setting('autovacuum_analyze_scale_factor')::float8 as changed_scale,
                 coalesce(${options.freezeMaxAge ?? null}::int, current_setting('autovacuum_freeze_max_age')::int) as freeze_age
        )
        select n.nspname as schema, c.relname as table,
               coalesce(t.n_dead_tup > s.dead_base + s.dead_scale * greatest(c.reltuples, 0), false)
                 or coalesce(t.n_ins_since_vacuum > s.inserted_base + s.inserted_scale * greatest(c.reltuples, 0), false)
                 or greatest(age(c.relfrozenxid), coalesce(age(toast.relfrozenxid), 0)) > s.freeze_age as vacuum,
               coalesce(t.n_mod_since_analyze > s.changed_base + s.changed_scale * greatest(c.reltuples, 0), false)
                 as analyze
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_class toast on toast.oid = c.reltoastrelid
        left join pg_stat_user_tables t on t.relid = c.oid
        cross join settings s
        where c.relkind in ('r', 'm') and c.relpersistence = 'p'
        order by n.nspname, c.relname`.execute(db)
      return rows.filter((r) => r.vacuum || r.analyze)
    })
  }

  async function sweep(stopped: () => boolean): Promise<number> {
    let done = 0
    for (const { schema, table, vacuum, analyze } of await dueTables()) {
      if (stopped()) break
      const name = sql`${sql.id(schema, table)}`
      const statement = vacuum ? (analyze ? sql`vacuum (analyze) ${name}` : sql`vacuum ${name}`) : sql`analyze ${name}`
      const started = performance.now()
      await inTurn(database, (db) => statement.execute(db))
      const ms = Math.round(performance.now() - started)
      logger.info({ table: `${schema}.${table}`, vacuum, analyze, ms }, 'embedded database upkeep')
      done += 1
    }
    return done
  }

  return periodicSweep(sweep, {
    intervalMs: options.intervalMs ?? 60_000,
    logger,
    what: 'embedded database upkeep',
  })
}
