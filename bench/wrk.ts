import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { LoadResult } from './load.ts'

const run = promisify(execFile)

/**
 * Requests for random paths from a file. No `response` callback: calling Lua for every answer cost wrk
 * more CPU than the reads it measured saved (13,363/s with one, 15,220 to 16,918/s without).
 */
const SCRIPT = `
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
function init() math.randomseed(os.time() + math.floor(os.clock() * 1000000)) end
function request() return wrk.format("GET", paths[math.random(1, #paths)]) end
`

/** Whether wrk is on the PATH. */
export async function hasWrk(binary = 'wrk'): Promise<boolean> {
  try {
    await run(binary, ['--version']).catch((error: { stdout?: string }) => {
      // wrk prints its version and exits 1.
      if (!String(error.stdout ?? '').startsWith('wrk')) throw error
    })
    return true
  } catch {
    return false
  }
}

/**
 * As `read` (load.ts), with wrk, a load generator in C (as pgbench's client is), on 2 threads:
 * it leaves the two cores to the service and PostgreSQL where autocannon, in Node, took up to half a core.
 */
export async function wrkRead(
  spec: Readonly<{ url: string; connections: number; durationS: number; keys: readonly string[] }>,
  pathOf: (key: string) => string,
): Promise<LoadResult> {
  const dir = await mkdtemp(join(tmpdir(), 'allocation-bench-wrk-'))
  try {
    const [script, paths] = [join(dir, 'read.lua'), join(dir, 'paths.txt')]
    await writeFile(script, SCRIPT)
    await writeFile(paths, `${spec.keys.map(pathOf).join('\n')}\n`)
    const { stdout } = await run(
      'wrk',
      ['-t2', `-c${spec.connections}`, `-d${spec.durationS}s`, '--latency', '-s', script, spec.url],
      { env: { ...process.env, WRK_PATHS: paths }, maxBuffer: 1 << 20 },
    )
    return parseWrk(stdout, spec.connections)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** wrk's report (with `--latency` and the script's status line) as the bench's result of a read run. */
export function parseWrk(text: string, connections: number): LoadResult {
  const ms = (value: string, unit: string) => Number(value) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? Number.NaN)
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)$`, 'm').exec(text)
    return match ? ms(match[1] as string, match[2] as string) : Number.NaN
  }
  const latency = /^\s+Latency\s+([\d.]+)(us|ms|s)\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)/m.exec(text)
  const totals = /(\d+) requests in ([\d.]+)s/.exec(text)
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  if (!latency || !totals) throw new Error(`Unexpected output of wrk:\n${text}`)
  const requests = Number(totals[1])
  const seconds = Number(totals[2])
  const failed = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0)
  const succeeded = requests - failed
  // wrk counts the answers that are not 2xx without telling them apart: all are counted as 5xx, the worst.
  const serverErrors = failed
  const statusCounts = { '200': succeeded, ...(failed > 0 && { 'not 2xx': failed }) }
  return {
    connections,
    seconds,
    requests,
    allocated: succeeded,
    allocatedQty: 0,
    allocationsPerSecond: succeeded / seconds,
    non2xx: failed,
    outOfStock: 0,
    serverErrors,
    otherNon2xx: failed - serverErrors,
    connectionErrors: errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    statusCounts,
    perSecond: [],
    latency: {
      mean: ms(latency[1] as string, latency[2] as string),
      p50: percentile('50'),
      p90: percentile('90'),
      p99: percentile('99'),
      max: ms(latency[3] as string, latency[4] as string),
    },
    unexpected: [],
  }
}
