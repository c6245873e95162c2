import { type ChildProcess, spawn } from 'node:child_process'
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
  /** Every process of a service spread over several (HTTP processes and a relay), to sample together. */
  allPids?: readonly number[]
  /** Lines logged at warn and above so far, by level. */
  logCounts(): LogCounts
  /** The first lines logged at error or above, for the report. */
  errorSamples(): readonly string[]
  /** SIGTERM, then resolves with the exit code. */
  stop(): Promise<number | null>
}>

/**
 * Runs `node src/main.ts` with `env` on a port the system picks; resolves once it answers. `args` name
 * another command (`serve --no-relay`); `relay` listens on nothing and is ready once it says it delivers.
 * `wrapper` runs node under another program (valgrind and its options).
 */
export async function startService(
  env: Record<string, string>,
  { args = [], timeoutMs = 60_000, wrapper = [] }: { args?: string[]; timeoutMs?: number; wrapper?: string[] } = {},
): Promise<Service> {
  const { DATABASE_URL: _url, DATA_DIR: _dir, PORT: _port, ...inherited } = process.env
  const [command = process.execPath, ...prefix] = [...wrapper, process.execPath]
  const child = spawn(command, [...prefix, MAIN, ...args], {
    // Without the per-request log line, so figures stay comparable with those measured before it existed.
    env: { ...inherited, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', LOG_REQUESTS: 'false', ...env },
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

  const url =
    args[0] === 'relay'
      ? await relayReady(child, exited, () => head, timeoutMs)
      : await listeningAddress(child, exited, () => head, timeoutMs)
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

/** Resolves once a relay process logged that it delivers the outbox; its "url" is empty. */
function relayReady(
  child: ChildProcess,
  exited: Promise<number | null>,
  output: () => string,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`did not start within ${timeoutMs} ms`), timeoutMs)
    const fail = (why: string) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`The relay ${why}. Its output:\n${output()}`))
    }
    child.stdout?.on('data', () => {
      if (output().includes('Delivering the outbox')) {
        clearTimeout(timer)
        resolve('')
      }
    })
    void exited.then((code) => fail(`exited with ${code} before delivering`))
  })
}

/** Several processes on one database seen as one service: load goes to `urls`, CPU and memory are summed or maxed. */
export function serviceGroup(parts: readonly Service[]): Service & { urls: string[] } {
  const [first] = parts
  if (!first) throw new Error('A service group needs at least one process')
  return {
    url: first.url,
    urls: parts.map((p) => p.url).filter((url) => url !== ''),
    pid: first.pid,
    allPids: parts.flatMap((p) => (p.pid === null ? [] : [p.pid])),
    logCounts: () => {
      const counts: Record<string, number> = {}
      for (const part of parts) {
        for (const [level, n] of Object.entries(part.logCounts())) counts[level] = (counts[level] ?? 0) + n
      }
      return counts
    },
    errorSamples: () => parts.flatMap((p) => p.errorSamples()),
    async stop() {
      const codes = await Promise.all(parts.map((p) => p.stop()))
      return codes.find((code) => code !== 0) ?? 0
    },
  }
}
