import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect } from 'vitest'
import { createDatabase, createDataDir, postgresAvailable } from '../support/servers.ts'
import { listeningAddress } from '../support/service-process.ts'

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

export type RunningService = Readonly<{
  url: string
  pid: number
  /** Everything the process wrote so far, for failure messages. */
  output(): string
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>
  /** Kills it at once (SIGKILL), as a crash would: no shutdown, nothing flushed. */
  kill(): Promise<void>
}>

/**
 * Runs `node src/main.ts` as a user would, on a port the system picks (read back from the startup line,
 * so two test runs never race for one), and resolves once it answers.
 */
export async function startService(env: Record<string, string>, timeoutMs = 45_000): Promise<RunningService> {
  const { DATABASE_URL: _url, DATA_DIR: _dir, REDIS_URL: _redis, SMTP_URL: _smtp, ...inherited } = process.env
  const child = spawn(process.execPath, [MAIN], {
    env: { ...inherited, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)

  const url = await listeningAddress(child, exited, () => output, timeoutMs)
  await answers(`${url}/health`)
  return {
    url,
    pid: child.pid ?? 0,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exited
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

/** Runs `node src/main.ts` expecting it to fail; resolves with the exit code and the output. */
export async function runFailingService(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  return { code: code as number | null, output }
}

async function answers(url: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(url)
      if (response.ok) return
    } catch (error) {
      if (attempt > 50) throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export type Storage = Readonly<{ env: Record<string, string>; drop(): Promise<void> }>

export type StorageMode = Readonly<{ name: string; prepare(): Promise<Storage> }>

export const pgliteMode: StorageMode = {
  name: 'embedded PGlite',
  async prepare() {
    const { dir, drop } = await createDataDir()
    return { env: { DATA_DIR: dir }, drop }
  },
}

export const postgresMode: StorageMode = {
  name: 'PostgreSQL server',
  async prepare() {
    const { url, drop } = await createDatabase()
    return { env: { DATABASE_URL: url }, drop }
  },
}

/** PGlite always; PostgreSQL when it answers (required under CI, skipped with a line otherwise). */
export async function storageModes(): Promise<StorageMode[]> {
  return (await postgresAvailable()) ? [pgliteMode, postgresMode] : [pgliteMode]
}

export type Answer = Readonly<{ status: number; body: any; headers: Headers }>

/** A JSON client for one service. `raw` sends a body exactly as given. */
export function client(baseUrl: string) {
  async function request(
    method: string,
    path: string,
    body?: unknown,
    options: { raw?: string; contentType?: string } = {},
  ): Promise<Answer> {
    const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body))
    const headers: Record<string, string> = {}
    if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json'
    const response = await fetch(`${baseUrl}${path}`, { method, headers, body: payload ?? null })
    const text = await response.text()
    const isJson = response.headers.get('content-type')?.includes('json') && text !== ''
    return { status: response.status, body: isJson ? JSON.parse(text) : text, headers: response.headers }
  }
  return {
    request,
    get: (path: string) => request('GET', path),
    post: (path: string, body: unknown) => request('POST', path, body),
    patch: (path: string, body: unknown) => request('PATCH', path, body),
    delete: (path: string) => request('DELETE', path),
  }
}

export type Client = ReturnType<typeof client>

/** Every committed event of one sku, read page by page from the start of the outbox. */
export async function eventsOfSku(api: Client, sku: string): Promise<Array<Record<string, any>>> {
  const found: Array<Record<string, any>> = []
  for (let after = 0; ; ) {
    const page = (await api.get(`/events?after=${after}&limit=1000`)).body
    found.push(...page.events.filter((e: { sku?: string }) => e.sku === sku))
    if (page.events.length === 0) return found
    after = page.next
  }
}

/**
 * Starts the service (with `env` added) on a database of its own in `mode` before the file's tests, and
 * stops it after them, expecting a clean exit; `service()` is it once started.
 */
export function serviceRunningOn(mode: StorageMode, env: Record<string, string> = {}): () => RunningService {
  let storage: Storage
  let service: RunningService
  beforeAll(async () => {
    storage = await mode.prepare()
    service = await startService({ ...storage.env, ...env })
  })
  afterAll(async () => {
    const code = await service?.stop()
    await storage?.drop()
    expect(code, service?.output()).toBe(0)
  })
  return () => service
}

/** As `serviceRunningOn`; `api()` reaches the service once started. */
export function runningOn(mode: StorageMode): () => Client {
  const service = serviceRunningOn(mode)
  let api: Client | undefined
  return () => {
    api ??= client(service().url)
    return api
  }
}
