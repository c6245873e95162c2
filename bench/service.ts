import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { listeningAddress } from '../tests/support/service-process.ts'

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url))

/** pino's numeric levels. */
const LEVELS: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' }

export type LogCounts = Readonly<Record<string, number>>

export type Service = Readonly<{
  url: string
  /** The process to sample for CPU; `null` for a service the bench did not start. */
  pid: number | null
  /** Lines logged at warn and above so far, by level. */
  logCounts(): LogCounts
  /** The first lines logged at error or above, for the report. */
  errorSamples(): readonly string[]
  /** SIGTERM, then resolves with the exit code. */
  stop(): Promise<number | null>
}>

/** Runs `node src/main.ts` with `env` on a port the system picks; resolves once it answers. */
export async function startService(env: Record<string, string>, timeoutMs = 60_000): Promise<Service> {
  const { DATABASE_URL: _url, DATA_DIR: _dir, PORT: _port, ...inherited } = process.env
  const child = spawn(process.execPath, [MAIN], {
    env: { ...inherited, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const counts: Record<string, number> = {}
  const samples: string[] = []
  let head = ''
  let partial = ''
  const read = (chunk: string) => {
    if (head.length < 20_000) head += chunk
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      const level = LEVELS[Number(/^\{"level":(\d+)/.exec(line)?.[1])]
      const key = level ?? (line.startsWith('{') ? null : 'unstructured')
      if (!key) continue
      counts[key] = (counts[key] ?? 0) + 1
      if (key !== 'warn' && samples.length < 10) samples.push(line.slice(0, 2000))
    }
  }
  child.stdout.setEncoding('utf8').on('data', read)
  child.stderr.setEncoding('utf8').on('data', read)
  const exited = once(child, 'exit').then(([code]) => code as number | null)

  const url = await listeningAddress(child, exited, () => head, timeoutMs)
  return {
    url,
    pid: child.pid ?? null,
    logCounts: () => ({ ...counts }),
    errorSamples: () => [...samples],
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exited
    },
  }
}

/** A service the bench did not start (`--url`): nothing to sample, nothing to stop. */
export function externalService(url: string): Service {
  return {
    url: url.replace(/\/$/, ''),
    pid: null,
    logCounts: () => ({}),
    errorSamples: () => [],
    stop: async () => null,
  }
}

/** Per-level counts logged between two snapshots. */
export function logsSince(before: LogCounts, after: LogCounts): LogCounts {
  return Object.fromEntries(Object.entries(after).map(([level, n]) => [level, n - (before[level] ?? 0)]))
}
