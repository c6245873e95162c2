import { sql } from 'kysely'
import { type PeriodicSweep, periodicSweep } from '../../service-layer/periodic-sweep.ts'
import type { Logger } from '../../service-layer/ports.ts'
import { type Database, runDurably } from './database.ts'

type Page = Readonly<{ removed: number; more: boolean }>

/**
 * Removes what is kept only for a while once it is older than `days`: delivered events from the outbox,
 * and the ids of handled messages (kept to ignore a message delivered twice). Oldest first, a page at a
 * time, one statement a page, with requests between pages.
 *
 * An event page moves the outbox's horizon past the events it removes, and ends at the first event still
 * within the period, so a sweep with nothing to remove reads one page of the primary key from the
 * horizon on, however long the outbox. An event still waiting for its delivery stays, however old. Each
 * page locks the horizon's row: processes that sweep at the same time take turns.
 */
export function retention(
  database: Database,
  logger: Logger,
  options: Readonly<{ days: number; intervalMs?: number; pageSize?: number }>,
): PeriodicSweep {
  const { days } = options
  const pageSize = options.pageSize ?? 5000
  const cutoff = sql`now() - make_interval(days => ${days}::int)`

  const eventPage = () =>
    runDurably(database, async (db): Promise<Page & { through: number | null }> => {
      const { rows } = await sql<{ removed: number; through: string | null }>`
        with horizon as (
          select pruned_through from outbox_horizon for update
        ), page as (
          select id, created_at from outbox
          where id > (select pruned_through from horizon)
          order by id limit ${pageSize}
        ), marked as (
          select id, bool_or(created_at >= ${cutoff}) over (order by id) as kept from page
        ), through as (
          select max(id) as id from marked where not kept
        ), gone as (
          delete from outbox
          where id > (select pruned_through from horizon) and id <= (select id from through)
            and not exists (select from pending_deliveries p where p.id = outbox.id)
          returning id
        ), moved as (
          update outbox_horizon set pruned_through = t.id from through t where t.id is not null
        )
        select (select count(*) from gone)::int as removed, (select id from through) as through`.execute(db)
      const through = rows[0]?.through == null ? null : Number(rows[0].through)
      return { removed: rows[0]?.removed ?? 0, more: through !== null, through }
    })

  const messagePage = () =>
    runDurably(database, async (db): Promise<Page> => {
      const { rows } = await sql<{ removed: number }>`
        with gone as (
          delete from handled_messages where id in (
            select id from handled_messages where handled_at < ${cutoff} order by handled_at limit ${pageSize}
          )
          returning id
        )
        select count(*)::int as removed from gone`.execute(db)
      const removed = rows[0]?.removed ?? 0
      return { removed, more: removed === pageSize }
    })

  /** Runs `page` until it says there is no more; returns how many rows went. */
  async function drain(page: () => Promise<Page>, stopped: () => boolean): Promise<number> {
    let removed = 0
    for (;;) {
      const done = await page()
      removed += done.removed
      if (!done.more || stopped()) return removed
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  async function sweep(stopped: () => boolean): Promise<number> {
    const events = await drain(eventPage, stopped)
    const messages = stopped() ? 0 : await drain(messagePage, stopped)
    if (events + messages > 0)
      logger.info({ events, messages, days }, 'removed events and message ids past their retention')
    return events + messages
  }

  return periodicSweep(sweep, {
    intervalMs: options.intervalMs ?? 60_000,
    logger,
    what: 'removing events and message ids past their retention',
  })
}
