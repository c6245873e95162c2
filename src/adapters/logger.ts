import { AsyncLocalStorage } from 'node:async_hooks'
import { type DestinationStream, type Logger, pino } from 'pino'

/** The request being handled, for the log lines written on its behalf far from the HTTP code. */
export const logContext = new AsyncLocalStorage<Readonly<{ reqId: string }>>()

/**
 * The service's logger. A line the service writes while handling a request carries the request's id;
 * the HTTP layer's own lines (children of this logger) already have it bound.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const logger: Logger = pino(
    {
      level,
      mixin: (_line, _level, writer) => {
        const context = writer === logger ? logContext.getStore() : undefined
        return context ? { reqId: context.reqId } : {}
      },
    },
    destination,
  )
  return logger
}
