import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { Worker } from 'node:worker_threads'
import { PGliteAdapter, PGliteDialect, type PGliteDialectConfig } from 'kysely'
import type {
  CommandCompleteMessage,
  DatabaseError,
  DataRowMessage,
  RowDescriptionMessage,
} from 'pg-protocol/dist/messages.js'
import { Parser } from 'pg-protocol/dist/parser.js'
import { errorFields } from './error-fields.ts'
import { typeParser } from './type-parsers.ts'

type KyselyPglite = Exclude<PGliteDialectConfig['pglite'], (...args: never[]) => unknown>

export type PgliteWorkerOptions = Readonly<{
  dataDir: string
  /** `postgresql.conf` lines (memory settings). */
  postgresqlConf: readonly string[]
  /** The WebAssembly memory PGlite starts with; `null` for its default. */
  initialMemoryBytes: number | null
}>

type PgliteOperation = Readonly<
  { op: 'query'; sql: string; params: readonly unknown[] } | { op: 'exec'; sql: string } | { op: 'close' }
>
export type PgliteRequest = PgliteOperation & Readonly<{ id: number }>

type QueryResult = Readonly<{ rows: unknown[]; affectedRows: number | null; command?: string | null }>

export type PgliteResponse =
  | Readonly<{ id: number; result: QueryResult }>
  /** PostgreSQL's answer as it wrote it (its wire protocol), read here rather than in the database thread. */
  | Readonly<{ id: number; messages: Uint8Array }>
  | Readonly<{ id: number; error: Record<string, unknown> }>

type ThreadMessage = Readonly<{ ready: true } | { failed: Record<string, unknown> }>

const WORKER = new URL('./pglite-worker.ts', import.meta.url)
const INIT = new URL('./pglite-init.ts', import.meta.url)

/**
 * PGlite's WebAssembly stays on V8's baseline compiler (Liftoff). Optimising its hot functions (TurboFan)
 * takes hundreds of MB while it compiles, much of which the allocator keeps; on Liftoff alone PostgreSQL's
 * code runs slower but the service does not wait on it much: under the bench's embedded load, ~90 MB less
 * peak RSS for ~6% fewer answers/s. V8's flags are the process's; set at run time, `--liftoff-only` alone
 * did not take effect (V8 applies the flags it implies at start-up), hence all three.
 */
const LIFTOFF_ONLY = '--liftoff-only --no-wasm-tier-up --no-wasm-dynamic-tiering'
/** The thread keeps ~20 MB of live objects; V8's default young generation grows to ~50 MB beside them. */
const YOUNG_GENERATION_MB = 8
/**
 * The main thread's young generation is sized when the process starts and has grown to ~22 MB by now; under
 * load it would grow to ~50 MB. From here it stays near its size (~30 MB): ~20 MB less peak RSS, no loss of
 * answers/s the bench could tell from noise. `--max-semi-space-size` would do more, on the command line only.
 */
const MAIN_YOUNG_GENERATION_STAYS = '--semi-space-growth-factor=1'
/**
 * V8 lets the old generation grow to a multiple of what the last full collection kept before collecting
 * again, and raises the multiple while collections look cheap. Under a sustained embedded load the main
 * thread kept ~35 MB live and then went over 80 s without a full collection: the RSS rose from 255 to
 * 341 MB before falling back to 262 MB. Grown by at most a fifth, it collects every ~10 s and the RSS
 * stays at 283 MB over 240 s, at the same answers/s (904 against 839/s).
 */
const OLD_GENERATION_GROWS_BY_A_FIFTH = '--heap-growing-percent=20'

/**
 * Flushes the write-ahead log as far as it is written, when anything is not yet on disk: a message
 * logged with `flush` (PostgreSQL 17+) makes PostgreSQL flush up to it, and so every commit before it.
 */
const FLUSH_STATEMENT = `select case when pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn()
  then pg_logical_emit_message(false, 'allocation', '', true) end`

/** The database thread, as Kysely's dialect uses it, and the flush of its commits. */
export type EmbeddedDatabase = KyselyPglite &
  Readonly<{
    /**
     * Resolves once every statement answered before the call is on disk. The thread runs statements in
     * the order they are sent and answers them in that order, so a flush sent and not yet answered
     * covers every statement answered so far: a caller joins it rather than wait for another.
     */
    flush(): Promise<void>
    /** Flush statements sent to the thread so far. */
    readonly flushesSent: number
  }>

/** An error from the database thread, with the fields of PostgreSQL's (`code`, `constraint`...). */
export class PgliteError extends Error {
  override readonly name = 'PgliteError'
}

const asError = (fields: Record<string, unknown>) =>
  Object.assign(new PgliteError(String(fields.message)), { ...fields, name: 'PgliteError' })

/**
 * PGlite in a worker thread, behind the interface Kysely's `PGliteDialect` expects. A transaction holds
 * the database until it ends; a query outside one waits for it, as with PGlite itself, but not for the
 * answers of the queries sent before it: the thread runs them in the order they came, and has the next
 * at hand when one ends instead of waiting for the main thread to send it. The thread keeps the process
 * alive only while a request is in flight.
 */
export function pgliteThread(options: PgliteWorkerOptions): EmbeddedDatabase {
  const pending = new Map<number, { resolve: (r: QueryResult) => void; reject: (e: Error) => void }>()
  let nextId = 1
  let closed = false
  let ready = false
  let failure: Error | null = null
  /** The flush on its way and not yet answered; its id is 0 until it is sent. */
  let flushing: { id: number; done: Promise<void> } | null = null
  let flushesSent = 0
  const fail = (error: Error) => {
    failure = error
    closed = true
    flushing = null
    for (const waiting of pending.values()) waiting.reject(error)
    pending.clear()
  }

  setFlagsFromString(`${LIFTOFF_ONLY} ${MAIN_YOUNG_GENERATION_STAYS} ${OLD_GENERATION_GROWS_BY_A_FIFTH}`)
  const started = (async () => {
    if (!existsSync(join(options.dataDir, 'PG_VERSION'))) await initialise(options)
    const worker = new Worker(WORKER, {
      workerData: options,
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    })
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (message: ThreadMessage) => {
        if ('failed' in message) {
          reject(asError(message.failed))
          void worker.terminate()
        } else resolve()
      })
      worker.once('error', reject)
    })
    ready = true
    worker.on('message', (response: PgliteResponse) => {
      const waiting = pending.get(response.id)
      pending.delete(response.id)
      // Here, not once its answer is read: a caller answered from now on was answered after the flush.
      if (flushing?.id === response.id) flushing = null
      if (pending.size === 0) worker.unref()
      if ('error' in response) waiting?.reject(asError(response.error))
      else if ('messages' in response) {
        try {
          waiting?.resolve(readResult(response.messages))
        } catch (error) {
          waiting?.reject(error as Error)
        }
      } else waiting?.resolve(response.result)
    })
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`The embedded database thread exited (code ${code})`)))
    if (pending.size === 0) worker.unref()
    return worker
  })()
  const waitReady = started.then(() => {})
  // Nothing waits for readiness before the first query, which then reports the failure.
  waitReady.catch(() => {})

  const send = async (request: PgliteOperation, onSent?: (id: number) => void): Promise<QueryResult> => {
    const worker = await started
    if (failure) throw failure
    const id = nextId++
    onSent?.(id)
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject })
      worker.ref()
      worker.postMessage({ ...request, id })
    })
  }
  const run = (sql: string, params: readonly unknown[] = []) =>
    send({ op: 'query', sql, params }) as Promise<{ rows: never[]; affectedRows?: number; fields: [] }>

  let tail: Promise<unknown> = Promise.resolve()
  /** Sends a statement after any transaction: the turn ends once it is sent rather than when its answer comes. */
  const inTurn = <T>(sendIt: () => Promise<T>): Promise<T> => {
    const sent = tail.then(() => ({ answer: sendIt() }))
    tail = sent
    return sent.then(({ answer }) => answer)
  }
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const turn = tail.then(work)
    tail = turn.catch(() => {})
    return turn
  }

  return {
    get closed() {
      return closed
    },
    get ready() {
      return ready && !closed
    },
    waitReady,
    query: (sql, params) => inTurn(() => run(sql, params)),
    flush: () => {
      if (flushing) return flushing.done
      const flush = { id: 0, done: Promise.resolve() }
      flush.done = inTurn(() => {
        flushesSent += 1
        return send({ op: 'query', sql: FLUSH_STATEMENT, params: [] }, (id) => {
          flush.id = id
        })
      }).then(
        () => {},
        (error: unknown) => {
          if (flushing === flush) flushing = null
          throw error
        },
      )
      flushing = flush
      return flush.done
    },
    get flushesSent() {
      return flushesSent
    },
    transaction: (callback) =>
      exclusive(async () => {
        await send({ op: 'exec', sql: 'BEGIN' })
        let ended = false
        const end = async (sql: 'COMMIT' | 'ROLLBACK') => {
          ended = true
          return send({ op: 'exec', sql })
        }
        try {
          const result = await callback({ query: run, rollback: async () => void (await end('ROLLBACK')) })
          if (!ended && (await end('COMMIT')).command === 'ROLLBACK') {
            throw asError({ message: 'The transaction was aborted and rolled back', code: '25P02' })
          }
          return result
        } catch (error) {
          if (!ended) await end('ROLLBACK').catch(() => {})
          throw error
        }
      }),
    close: () =>
      exclusive(async () => {
        if (closed) return
        const worker = await started.catch(() => null)
        await send({ op: 'close' }).catch(() => {})
        closed = true
        await worker?.terminate()
      }),
  }
}

/**
 * Reads PostgreSQL's answer to one statement: its rows, with the parsers a server's rows get
 * (`typeParser`), and the rows it changed, as PGlite counts them. Done here, on the main thread, which
 * has time to spare, rather than in the database thread, which the embedded service waits on.
 */
function readResult(messages: Uint8Array): QueryResult {
  let columns: Array<Readonly<{ name: string; parse: (value: string) => unknown }>> = []
  const rows: Record<string, unknown>[] = []
  let affectedRows = 0
  let command: string | null = null
  let failure: DatabaseError | null = null
  new Parser().parse(Buffer.from(messages.buffer, messages.byteOffset, messages.byteLength), (message) => {
    switch (message.name) {
      case 'rowDescription':
        columns = (message as RowDescriptionMessage).fields.map(({ name, dataTypeID }) => ({
          name,
          parse: typeParser(dataTypeID, 'text') as (value: string) => unknown,
        }))
        break
      case 'dataRow': {
        const values = (message as DataRowMessage).fields
        const row: Record<string, unknown> = {}
        for (const [i, { name, parse }] of columns.entries()) {
          const value = values[i]
          row[name] = value === null || value === undefined ? null : parse(value)
        }
        rows.push(row)
        break
      }
      case 'commandComplete': {
        const words = (message as CommandCompleteMessage).text.split(' ')
        command = words[0] ?? null
        if (command && CHANGING.has(command)) affectedRows += Number(words.at(-1))
        break
      }
      case 'error':
        failure ??= message as DatabaseError
        break
    }
  })
  if (failure) {
    const error: DatabaseError = failure
    throw asError({ ...errorFields(error), message: error.message })
  }
  return { rows, affectedRows, command }
}

/** The commands whose tag counts the rows they changed. */
const CHANGING = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'COPY'])

/**
 * Kysely's dialect for PGlite, told that the database takes statements from several callers at once, so
 * that it does not wait for each statement's answer before it passes on the next (as it does for a driver
 * with a single connection). The database's turns keep a transaction to itself (`Database.acquireExclusive`):
 * on one connection, every statement sent while it is open would be part of it.
 */
export function pipelinedPgliteDialect(pglite: KyselyPglite): PGliteDialect {
  class PipelinedAdapter extends PGliteAdapter {
    override get supportsMultipleConnections(): boolean {
      return true
    }
  }
  return new (class extends PGliteDialect {
    override createAdapter() {
      return new PipelinedAdapter()
    }
  })({ pglite })
}

async function initialise(options: PgliteWorkerOptions): Promise<void> {
  const child = spawn(process.execPath, [...LIFTOFF_ONLY.split(' '), fileURLToPath(INIT), JSON.stringify(options)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-2000)
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) {
    throw new PgliteError(
      `Creating the embedded database in ${options.dataDir} failed (exit ${code}): ${stderr.trim()}`,
    )
  }
}
