import type { PGliteOptions } from '@electric-sql/pglite'
import type { PgliteWorkerOptions } from './pglite-thread.ts'

/** PGlite's own options for the database `options` describe: the same for initdb and for serving. */
export function pgliteSettings(options: PgliteWorkerOptions): PGliteOptions {
  return {
    dataDir: options.dataDir,
    ...(options.postgresqlConf.length > 0 && { postgresqlconf: [...options.postgresqlConf] }),
    ...(options.initialMemoryBytes !== null && { initialMemory: options.initialMemoryBytes }),
  }
}
