import { PGlite } from '@electric-sql/pglite'
import { pgliteSettings } from './pglite-settings.ts'
import type { PgliteWorkerOptions } from './pglite-thread.ts'

/**
 * Creates the embedded database (PGlite's initdb) and ends. pglite-thread.ts runs it as a process of its own:
 * a thread's ~50 MB of leftovers would stay in the service's allocator, while a process's all go back.
 * This module is a process's entry point: its side effects are the process's life.
 */
const options = JSON.parse(process.argv[2] ?? '{}') as PgliteWorkerOptions
const pglite = new PGlite(pgliteSettings(options))
await pglite.waitReady
await pglite.close()
