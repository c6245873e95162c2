import { pino } from 'pino'
import { loadConfig } from './config.ts'
import { type Server, startServer } from './entrypoints/http/server.ts'

/** Long enough for requests in flight to finish; a stuck connection must not keep the process alive. */
const SHUTDOWN_GRACE_MS = 10_000

let server: Server
try {
  server = await startServer(loadConfig())
} catch (error) {
  pino().fatal({ err: error }, 'The allocation service could not start')
  process.exit(1)
}

let stopping = false
async function stop(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return
  stopping = true
  server.service.logger.info({ signal }, 'Shutting down')
  setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref()
  try {
    await server.close()
    process.exit(0)
  } catch (error) {
    server.service.logger.error({ err: error }, 'Shutdown failed')
    process.exit(1)
  }
}

process.once('SIGTERM', stop)
process.once('SIGINT', stop)
