import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createDatabase } from './postgres.ts'

const run = promisify(execFile)

export type PgbenchResult = Readonly<{
  tps: number
  scale: number
  clients: number
  threads: number
  seconds: number
  initSeconds: number
  /** pgbench's summary, as printed. */
  summary: string
  /** The built-in select-only script (`-S`: one primary-key read per transaction), same clients, same length. */
  selectOnly?: Readonly<{ tps: number; summary: string }> | null
}>

/**
 * TPC-B-like pgbench, then (with `selectOnly`) its select-only script, on a database of its own on the
 * same server; the database is dropped after.
 */
export async function pgbench(
  serverUrl: string,
  stamp: string,
  seconds: number,
  { scale = 10, clients = 10, threads = 2, binary = 'pgbench', selectOnly = false } = {},
): Promise<PgbenchResult> {
  const database = await createDatabase(serverUrl, 'allocation_pgbench', stamp)
  try {
    const url = new URL(database.url)
    const connection = ['-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username)]
    const env = { ...process.env, ...(url.password && { PGPASSWORD: decodeURIComponent(url.password) }) }
    const initStarted = performance.now()
    await run(binary, ['-i', '-q', '-s', String(scale), ...connection, database.name], { env })
    const initSeconds = (performance.now() - initStarted) / 1000
    const args = ['-c', String(clients), '-j', String(threads), '-T', String(seconds), '-n', ...connection]
    const measure = async (...extra: string[]) => {
      const { stdout } = await run(binary, [...args, ...extra, database.name], { env })
      const tps = Number(/^tps = ([\d.]+)/m.exec(stdout)?.[1])
      if (!Number.isFinite(tps)) throw new Error(`pgbench printed no tps:\n${stdout}`)
      return { tps, summary: stdout.trim() }
    }
    const tpcbRun = await measure()
    const selectRun = selectOnly ? await measure('-S') : null
    return { ...tpcbRun, scale, clients, threads, seconds, initSeconds, selectOnly: selectRun }
  } finally {
    await database.drop()
  }
}
