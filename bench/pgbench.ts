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
}>

/** TPC-B-like pgbench on a database of its own on the same server; the database is dropped after. */
export async function pgbench(
  serverUrl: string,
  stamp: string,
  seconds: number,
  { scale = 10, clients = 10, threads = 2, binary = 'pgbench' } = {},
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
    const { stdout } = await run(binary, [...args, database.name], { env })
    const tps = Number(/^tps = ([\d.]+)/m.exec(stdout)?.[1])
    if (!Number.isFinite(tps)) throw new Error(`pgbench printed no tps:\n${stdout}`)
    return { tps, scale, clients, threads, seconds, initSeconds, summary: stdout.trim() }
  } finally {
    await database.drop()
  }
}
