import { PGlite, type PGliteOptions } from '@electric-sql/pglite'
import { DurableNodeFS } from './durable-node-fs.ts'
import type { PgliteWorkerOptions } from './pglite-thread.ts'

/**
 * PGlite's own options for the database `options` describe: the same for initdb and for serving.
 * PGlite starts PostgreSQL with `-F` (fsync off); without it, each commit is flushed to disk before
 * it is answered, by `DurableNodeFS`.
 */
export function pgliteSettings(options: PgliteWorkerOptions): PGliteOptions {
  return {
    fs: new DurableNodeFS(options.dataDir),
    startParams: PGlite.defaultStartParams.filter((param) => param !== '-F'),
    ...(options.postgresqlConf.length > 0 && { postgresqlconf: [...options.postgresqlConf] }),
    ...(options.initialMemoryBytes !== null && { initialMemory: options.initialMemoryBytes }),
  }
}
