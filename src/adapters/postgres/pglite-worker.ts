import { parentPort, workerData } from 'node:worker_threads'
import { PGlite, parse, protocol } from '@electric-sql/pglite'
import { errorFields } from './error-fields.ts'
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

// Rows are read by the main thread (`pglite-thread.ts`), with the parsers of a server's.
const pglite = new PGlite(pgliteSettings(options))

/** Statements with parameters, parsed and planned once: their name and their parameters' types. */
const prepared = new Map<string, Readonly<{ name: string; types: number[] }>>()
/** Statement shapes that vary without bound (multi-row inserts) are not kept past this many. */
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

/** Parses and describes a statement: named and kept, or unnamed (kept only until the next). */
async function prepare(text: string, keep: boolean) {
  const name = keep ? `s${prepared.size + 1}` : ''
  const { serialize } = protocol
  const { messages } = await pglite.execProtocol(
    concat([serialize.parse({ name, text }), serialize.describe({ type: 'S', name }), serialize.sync()]),
    { syncToFs: false },
  )
  const statement = { name, types: parse.parseDescribeStatementResults(messages) }
  if (keep) prepared.set(text, statement)
  return statement
}

/**
 * Runs a statement and answers PostgreSQL's own messages, which the main thread reads: a statement with
 * parameters bound to its plan made once (bind, describe, execute and sync in one call into PostgreSQL),
 * one without in the simple protocol.
 */
async function query(text: string, params: readonly unknown[]): Promise<Uint8Array> {
  const { serialize } = protocol
  if (params.length === 0) return answer(serialize.query(text))
  const statement = prepared.get(text) ?? (await prepare(text, prepared.size < MAX_PREPARED))
  const values = params.map((value, i) => {
    if (value === null || value === undefined) return null
    const serializer = pglite.serializers[statement.types[i] ?? 0]
    return serializer ? serializer(value) : String(value)
  })
  return answer(
    concat([
      serialize.bind({ statement: statement.name, values }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    ]),
  )
}

/**
 * PostgreSQL's answer to `message`, in memory of its own. PGlite's `execProtocolRaw` would also parse it
 * here, and keep every message it parsed for as long as the thread lives.
 */
async function answer(message: Uint8Array): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  // What PGlite hands over is a view of memory it writes again: copied at once.
  await pglite.execProtocolRawStream(message, { onRawData: (data) => chunks.push(data.slice()) })
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : concat(chunks)
}

/** The error's fields that callers read (`code`, `constraint`, `detail`...), as plain data. */
function describeError(error: unknown) {
  if (!(error instanceof Error)) return { message: String(error) }
  return { ...errorFields(error), message: error.message, name: error.name }
}

/** The answer to a request, and the memory it hands over to the main thread rather than copy. */
async function handle(request: PgliteRequest): Promise<[PgliteResponse, ArrayBuffer[]]> {
  try {
    if (request.op === 'close') {
      await pglite.close()
      return [{ id: request.id, result: { rows: [], affectedRows: null } }, []]
    }
    if (request.op === 'exec') {
      const results = await pglite.exec(request.sql)
      // A COMMIT of a failed transaction answers ROLLBACK.
      const tag = (results.at(-1) as { command?: string } | undefined)?.command ?? null
      return [{ id: request.id, result: { rows: [], affectedRows: null, command: tag } }, []]
    }
    const messages = await query(request.sql, request.params)
    return [{ id: request.id, messages }, [messages.buffer as ArrayBuffer]]
  } catch (error) {
    return [{ id: request.id, error: describeError(error) }, []]
  }
}

let queue: Promise<unknown> = pglite.waitReady.then(
  () => port.postMessage({ ready: true }),
  (error: unknown) => port.postMessage({ failed: describeError(error) }),
)
port.on('message', (request: PgliteRequest) => {
  queue = queue.then(async () => {
    const [response, transfer] = await handle(request)
    port.postMessage(response, transfer)
    if (request.op === 'close') port.close()
  })
})
