import { fdatasyncSync } from 'node:fs'
import type { PGlite } from '@electric-sql/pglite'
import { NodeFS } from '@electric-sql/pglite/nodefs'

/** WASI's errno for an input/output error. */
const EIO = 29

type EmscriptenOptions = Parameters<NodeFS['init']>[1]
type Imports = Record<string, Record<string, unknown>>
type Instantiate = (imports: Imports, done: (...args: unknown[]) => void) => unknown
type Stream = { nfd?: number }

/**
 * PGlite's files on Node, flushed when PostgreSQL asks. PGlite's own Node file system answers
 * PostgreSQL's `fdatasync` and `fsync` without doing them, so a commit it acknowledged is in the
 * operating system's cache only, and a power cut could lose it. Here both reach the disk, as PostgreSQL
 * expects at each commit (the WAL) and each checkpoint (the tables).
 */
export class DurableNodeFS extends NodeFS {
  readonly #flushFile: (fd: number) => void

  /** `flushFile` flushes an open file to disk (Node's `fdatasyncSync`; a test counts the calls). */
  constructor(dataDir: string, flushFile: (fd: number) => void = fdatasyncSync) {
    super(dataDir)
    this.#flushFile = flushFile
  }

  override async init(pg: PGlite, options: EmscriptenOptions): Promise<{ emscriptenOpts: EmscriptenOptions }> {
    const { emscriptenOpts } = await super.init(pg, options)
    const instantiate = emscriptenOpts.instantiateWasm as unknown as Instantiate
    const flush = (fd: number): number => {
      const stream = (pg.Module.FS as unknown as { getStream(fd: number): Stream | null }).getStream(fd)
      if (stream?.nfd === undefined) return 0
      try {
        this.#flushFile(stream.nfd)
        return 0
      } catch {
        // PostgreSQL stops on a failed flush rather than go on with files it cannot trust.
        return EIO
      }
    }
    const instantiateWasm: Instantiate = (imports, done) => {
      // `fdatasync` flushes the WAL at commit; WASI's `fd_sync` is `fsync`, for the tables at checkpoint.
      const { env, wasi_snapshot_preview1: wasi } = imports
      if (!env?.__syscall_fdatasync || !wasi?.fd_sync) {
        throw new Error('This PGlite has no flush to replace; commits would not reach the disk')
      }
      env.__syscall_fdatasync = (fd: number) => -flush(fd)
      wasi.fd_sync = flush
      return instantiate(imports, done)
    }
    return { emscriptenOpts: { ...emscriptenOpts, instantiateWasm } as EmscriptenOptions }
  }
}
