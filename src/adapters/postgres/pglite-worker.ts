import { parentPort, workerData } from 'node:worker_threads'
import { PGlite, parse, protocol, types } from '@electric-sql/pglite'
import { pgliteSettings } from './pglite-settings.ts'
import type { PgliteRequest, PgliteResponse, PgliteWorkerOptions } from './pglite-thread.ts'

/**
 * The embedded database's own thread: PGlite runs here, so SQL and HTTP use a core each. Requests are
 * handled one at a time, in the order they come; the main thread keeps transactions exclusive.
 * This module is a thread's entry point: its side effects are the thread's life.
 */
const options = workerData as PgliteWorkerOptions
const port = parentPort
if (!port) throw new Error('pglite-worker.ts runs as a worker thread')

const asText = (value: string) => value
const pglite = new PGlite({ ...pgliteSettings(options), parsers: { [types.INT8]: Number, [types.DATE]: asText } })

/** Statements with parameters, parsed and planned once: their name and their parameters' types. */
const prepared = new Map<string, Readonly<{ name: string; types: number[] }>>()
/** Statement shapes that vary without bound (multi-row inserts) run unnamed past this many. */
const MAX_PREPARED = 1_000

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

async function prepare(text: string) {
  const name = `s${prepared.size + 1}`
  const { serialize } = protocol
  const { messages } = await pglite.execProtocol(
    concat([serialize.parse({ name, text }), serialize.describe({ type: 'S', name }), serialize.sync()]),
    { syncToFs: false },
  )
  const statement = { name, types: parse.parseDescribeStatementResults(messages) }
  prepared.set(text, statement)
  return statement
}

/** Bind, describe, execute and sync in one call into PostgreSQL, on a statement planned once. */
async function query(text: string, params: readonly unknown[]) {
  if (params.length === 0 || (!prepared.has(text) && prepared.size >= MAX_PREPARED)) {
    const { rows, affectedRows } = await pglite.query(text, [...params], { rowMode: 'object' })
    return { rows, affectedRows: affectedRows ?? null }
  }
  const statement = prepared.get(text) ?? (await prepare(text))
  const values = params.map((value, i) => {
    if (value === null || value === undefined) return null
    const serializer = pglite.serializers[statement.types[i] ?? 0]
    return serializer ? serializer(value) : String(value)
  })
  const { serialize } = protocol
  const { messages } = await pglite.execProtocol(
    concat([
      serialize.bind({ statement: statement.name, values }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    ]),
  )
  const [result] = parse.parseResults(messages, pglite.parsers, { rowMode: 'object' })
  return { rows: result?.rows ?? [], affectedRows: result?.affectedRows ?? null }
}

/** The error's fields that callers read (`code`, `constraint`, `detail`...), as plain data. */
function describeError(error: unknown) {
  if (!(error instanceof Error)) return { message: String(error) }
  const fields = Object.entries(error).filter(([, v]) => typeof v === 'string' || typeof v === 'number')
  return { ...Object.fromEntries(fields), message: error.message, name: error.name }
}

async function handle(request: PgliteRequest): Promise<PgliteResponse> {
  try {
    if (request.op === 'close') {
      await pglite.close()
      return { id: request.id, result: { rows: [], affectedRows: null } }
    }
    if (request.op === 'exec') {
      const results = await pglite.exec(request.sql)
      // A COMMIT of a failed transaction answers ROLLBACK.
      const tag = (results.at(-1) as { command?: string } | undefined)?.command ?? null
      return { id: request.id, result: { rows: [], affectedRows: null, command: tag } }
    }
    return { id: request.id, result: await query(request.sql, request.params) }
  } catch (error) {
    return { id: request.id, error: describeError(error) }
  }
}

let queue: Promise<unknown> = pglite.waitReady.then(
  () => port.postMessage({ ready: true }),
  (error: unknown) => port.postMessage({ failed: describeError(error) }),
)
port.on('message', (request: PgliteRequest) => {
  queue = queue.then(async () => {
    port.postMessage(await handle(request))
    if (request.op === 'close') port.close()
  })
})
