import { type FileHandle, open } from 'node:fs/promises'
import { pipeline } from 'node:stream'
import { CsvError, parse } from 'csv-parse'
import { Compile } from 'typebox/compile'
import { ConflictingBatch } from '../service-layer/handlers.ts'
import { InvalidInput } from './cli-input.ts'
import type { CliTarget, NewBatchFields } from './cli-target.ts'
import { problemOf } from './http/errors.ts'
import { NewBatch } from './http/schemas.ts'
import { progressBar } from './progress-bar.ts'

const COLUMNS = ['ref', 'sku', 'qty', 'eta'] as const
/** Rows per transaction; a chunk also ends before its JSON would near the API's 1 MiB body limit. */
export const CHUNK_ROWS = 1000
const CHUNK_BYTES = 512 * 1024
const validBatch = Compile(NewBatch)

export type ImportSummary = Readonly<{
  added: number
  present: number
  notWritten: number
  badRows: number
  rows: number
  /** From the first row read to the last chunk written. */
  seconds: number
}>

type Row = Readonly<{ line: number; batch: NewBatchFields }>
type Chunk = { rows: Row[]; bad: string[]; badRows: number; bytes: number }

/**
 * Adds the batches of a CSV file (columns ref,sku,qty,eta; eta empty for warehouse stock) in chunks,
 * each in one transaction. A bad row is reported with its line and column, and nothing of its chunk is
 * written; the other chunks are. Batches already there, the same, are counted and left as they are, so
 * running the same file again changes nothing.
 */
export async function importBatches(target: CliTarget, file: string): Promise<ImportSummary> {
  const { handle, size } = await openFile(file)
  const bar = progressBar(size)
  const started = performance.now()
  const summary = { added: 0, present: 0, notWritten: 0, badRows: 0 }
  let chunk: Chunk = { rows: [], bad: [], badRows: 0, bytes: 0 }
  let writing: Promise<void> = Promise.resolve()
  let rowCount = 0
  let columns: string[] = []
  // The first line of each ref and its fields: the same batch again is there already, another is a mistake.
  const firstLines = new Map<string, { line: number; fields: string }>()

  const write = async ({ rows, bad, badRows }: Chunk) => {
    summary.badRows += badRows
    if (bad.length === 0) {
      try {
        const { added, present } = await target.addBatches(rows.map((r) => r.batch))
        summary.added += added
        summary.present += present
        return
      } catch (error) {
        if (!(error instanceof ConflictingBatch)) throw error
        const line = rows[error.index]?.line
        bad.push(`Line ${line}, column ${columns.indexOf('ref') + 1} (ref): ${error.message}`)
        summary.badRows += 1
      }
    }
    summary.notWritten += rows.length + badRows
    for (const message of bad) bar.interrupt(message)
  }

  // pipeline, unlike pipe, passes a read error on to the records (pipe leaves it unhandled).
  const records = pipeline(
    handle.createReadStream(),
    parse({
      columns: (names: string[]) => {
        columns = header(names)
        return columns
      },
      bom: true,
      skip_empty_lines: true,
      trim: true,
      info: true,
      relax_column_count: true,
    }),
    () => {},
  )
  try {
    for await (const { record, info } of records as AsyncIterable<{
      record: Record<string, string | undefined>
      info: { lines: number; bytes: number }
    }>) {
      const candidate = fieldsOf(record)
      const fields = JSON.stringify(candidate)
      const first = firstLines.get(candidate.ref)
      if (first === undefined) firstLines.set(candidate.ref, { line: info.lines, fields })
      if (!validBatch.Check(candidate)) {
        chunk.bad.push(...problemsOf(candidate, record, columns, info.lines))
        chunk.badRows += 1
      } else if (first?.fields === fields) {
        summary.present += 1
      } else if (first !== undefined) {
        const place = `Line ${info.lines}, column ${columns.indexOf('ref') + 1} (ref)`
        chunk.bad.push(`${place}: ${candidate.ref} is on line ${first.line} already, as another batch`)
        chunk.badRows += 1
      } else {
        const batch = candidate as NewBatchFields
        chunk.rows.push({ line: info.lines, batch })
        chunk.bytes += JSON.stringify(batch).length
      }
      rowCount += 1
      if (chunk.rows.length + chunk.badRows >= CHUNK_ROWS || chunk.bytes >= CHUNK_BYTES) {
        // One chunk is written while the next is read; never two at once.
        await writing
        writing = write(chunk)
        // Its failure is thrown where it is awaited, once the next chunk is read.
        writing.catch(() => {})
        chunk = { rows: [], bad: [], badRows: 0, bytes: 0 }
      }
      bar.update(info.bytes, rowCount)
    }
  } catch (error) {
    if (error instanceof CsvError) throw new InvalidInput(`Line ${error.lines ?? '?'}: ${error.message}`)
    throw unreadable(file, error)
  }
  if (columns.length === 0) {
    throw new InvalidInput(`${file} has no header: its first line must name the columns ${COLUMNS.join(',')}`)
  }
  await writing
  if (chunk.rows.length + chunk.badRows > 0) await write(chunk)
  bar.done()
  return { ...summary, rows: rowCount, seconds: (performance.now() - started) / 1000 }
}

/** The file, open to read, and its size; a path that cannot be is the operator's mistake, said in a sentence. */
async function openFile(file: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle
  try {
    handle = await open(file)
  } catch (error) {
    throw unreadable(file, error)
  }
  const stats = await handle.stat()
  // A folder opens, and fails at the first read.
  if (stats.isDirectory()) {
    await handle.close()
    throw unreadable(file, { code: 'EISDIR' })
  }
  return { handle, size: stats.size }
}

function unreadable(file: string, error: unknown): unknown {
  const reasons: Record<string, string> = {
    ENOENT: `There is no file ${file}`,
    ENOTDIR: `There is no file ${file}`,
    EISDIR: `${file} is a folder; give the CSV file to import`,
    EACCES: `${file} cannot be read: permission denied`,
  }
  const reason = reasons[(error as { code?: string } | null)?.code ?? '']
  return reason ? new InvalidInput(reason) : error
}

/** The file's first line names its columns (in any case): ref, sku and qty are needed, eta may be left out. */
function header(given: string[]): string[] {
  const names = given.map((name) => name.trim().toLowerCase())
  const missing = COLUMNS.filter((c) => c !== 'eta' && !names.includes(c))
  if (missing.length > 0) {
    throw new InvalidInput(`The first line must name the columns ${COLUMNS.join(',')}; ${missing.join(', ')} missing`)
  }
  return names
}

/** The row as the API's fields: qty a number when it is written as a whole number, eta `null` when empty. */
function fieldsOf(record: Record<string, string | undefined>): Record<string, unknown> & { ref: string } {
  const { ref = '', sku = '', qty = '', eta } = record
  return { ref, sku, qty: /^-?\d{1,16}$/.test(qty) ? Number(qty) : qty, eta: eta ? eta : null }
}

/** One sentence per bad column of the row, naming its line, the column's place and name, and the value. */
function problemsOf(
  fields: Record<string, unknown>,
  record: Record<string, string | undefined>,
  columns: readonly string[],
  line: number,
): string[] {
  const seen = new Set<string>()
  const problems: string[] = []
  for (const error of validBatch.Errors(fields)) {
    const column = error.instancePath.slice(1)
    if (seen.has(column)) continue
    seen.add(column)
    const value = JSON.stringify(record[column] ?? '')
    problems.push(`Line ${line}, column ${columns.indexOf(column) + 1} (${column}): ${problemOf(error)}, not ${value}`)
  }
  return problems
}
