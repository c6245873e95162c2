import type { Allocate, Command } from '../domain/commands.ts'
import { LineConflict } from '../domain/errors.ts'
import type { DomainEvent } from '../domain/events.ts'
import { coalesce } from './coalesce.ts'
import { DependencyDown } from './fail-fast.ts'
import {
  allocateMany,
  type CommandHandler,
  type CommandHandlers,
  type CommandResults,
  commandHandlers,
  type EventHandler,
  type EventHandlers,
  eventHandlers,
  type HandlerDeps,
} from './handlers.ts'
import {
  type Clock,
  ConcurrencyConflict,
  type EventPublisher,
  type LineOutcome,
  type Logger,
  type Metrics,
  type Notifications,
  type Outbox,
  type StartUnitOfWork,
  type StoredEvent,
  systemClock,
  type UnitOfWork,
  uncountedMetrics,
} from './ports.ts'

export type BusDependencies = Readonly<{
  startUnitOfWork: StartUnitOfWork
  outbox: Outbox
  notifications: Notifications
  publisher: EventPublisher
  logger: Logger
  /** The handlers' time (holds expire by it); the system clock unless a test moves its own. */
  clock?: Clock
  /** Attempts of one message when its transaction loses a race (default 12). */
  maxAttempts?: number
  metrics?: Metrics
}>

export interface MessageBus {
  /** Handles the command, then every event it raised and their consequences; re-throws the command's error. */
  handle<C extends Command>(command: C): Promise<CommandResults[C['type']]>
  /**
   * As `handle`, for a message from outside that may arrive more than once: the id is recorded with the
   * command's transaction, and a message already handled resolves to `null` without running again.
   */
  handleOnce<C extends Command>(messageId: string, command: C): Promise<CommandResults[C['type']] | null>
  /** Hands a stored event (again) to its handlers, as the outbox sweep does; true when all succeeded. */
  deliver(stored: StoredEvent): Promise<boolean>
}

/** Undelivered events whose successful handlers a process remembers, at most. */
const MAX_EVENTS_REMEMBERED = 10_000

export function createMessageBus(
  deps: BusDependencies,
  handlers: { commands: CommandHandlers; events: EventHandlers } = { commands: commandHandlers, events: eventHandlers },
): MessageBus {
  const { logger, outbox } = deps
  const maxAttempts = deps.maxAttempts ?? 12
  const clock = deps.clock ?? systemClock
  const metrics = deps.metrics ?? uncountedMetrics

  /**
   * Runs `work` in a fresh unit of work, again on a lost race, and returns what it committed. A retry
   * takes locks, but the first may go without them when the store learned the product as the winner left
   * it (another process wrote it since this one cached it): then it is one more statement, not a locked
   * transaction.
   */
  async function inUnitOfWork<R>(work: (deps: HandlerDeps) => Promise<R>): Promise<[R, StoredEvent[]]> {
    let contended = false
    for (let attempt = 1; ; attempt++) {
      const uow: UnitOfWork = await deps.startUnitOfWork({ contended })
      try {
        const result = await work({ ...deps, clock, uow })
        return [result, uow.collectNewEvents()]
      } catch (error) {
        if (!(error instanceof ConcurrencyConflict) || attempt >= maxAttempts) throw error
        if (error.raced) metrics.writeConflictRetried()
        logger.debug(
          { err: error, attempt },
          error.raced ? 'transaction lost a race; retrying' : 'retrying with what the store read',
        )
        contended = attempt > 1 || !error.refreshed
      } finally {
        await uow.close()
      }
      await backoff(attempt)
    }
  }

  /**
   * The handlers of an undelivered event that already succeeded in this process: a retry runs only those
   * that failed, so the stock team is not mailed again because Redis was down, nor an event published
   * again because the mail server was. Another process retrying the event does not know them (delivery
   * stays at least once); the bound keeps events delivered elsewhere from piling up.
   */
  const succeededBefore = new Map<number, Set<EventHandler<DomainEvent>>>()

  /**
   * Runs every handler of one event (those that have not succeeded here before); returns the events they
   * committed and whether all succeeded. In line with a request the delivery mark is not waited for (a
   * lost mark means one more delivery); the relay waits for it so that a sweep ends with its events marked.
   */
  async function handleEvent({ id, event }: StoredEvent, awaitMark: boolean): Promise<[StoredEvent[], boolean]> {
    const raised: StoredEvent[] = []
    let succeeded = true
    const handlersOfEvent = handlers.events[event.type] as ReadonlyArray<EventHandler<DomainEvent>>
    const done = succeededBefore.get(id) ?? new Set<EventHandler<DomainEvent>>()
    for (const handler of handlersOfEvent) {
      if (done.has(handler)) continue
      try {
        const [, events] = await inUnitOfWork((handlerDeps) => handler(event, handlerDeps, id))
        raised.push(...events)
        done.add(handler)
      } catch (error) {
        succeeded = false
        // A dependency that is down has its outage logged once where it is seen, not once per event here.
        const context = { err: error, eventId: id, event, handler: handler.name }
        if (error instanceof DependencyDown) logger.debug(context, 'event handler failed; will retry')
        else logger.error(context, 'event handler failed; will retry')
      }
    }
    succeededBefore.delete(id)
    if (!succeeded && done.size > 0) {
      if (succeededBefore.size >= MAX_EVENTS_REMEMBERED)
        succeededBefore.delete(succeededBefore.keys().next().value as number)
      succeededBefore.set(id, done)
    }
    if (succeeded) {
      const marked = outbox.markDelivered(id).catch((error: unknown) => {
        logger.warn({ err: error, eventId: id }, 'could not mark event delivered; it will be delivered again')
      })
      if (awaitMark) await marked
    }
    return [raised, succeeded]
  }

  /** The queue is local to each call: concurrent calls share nothing mutable. */
  async function drain(queue: StoredEvent[], awaitMarks: boolean): Promise<boolean> {
    let allSucceeded = true
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [raised, succeeded] = await handleEvent(next, awaitMarks)
      queue.push(...raised)
      allSucceeded &&= succeeded
    }
    return allSucceeded
  }

  /**
   * Concurrent allocations of one sku share a transaction: one read, one write and one commit for the
   * group instead of one each, and no lost races among them. This is what keeps a hot sku fast.
   */
  const allocateGrouped = coalesce<string, Allocate, CommandResults['Allocate']>(async (_sku, commands) => {
    const [results, events] = await inUnitOfWork((handlerDeps) => allocateMany(commands, handlerDeps))
    await drain(events, false)
    return results
  })

  /** Counts what became of each line a caller sent. */
  async function counted<R>(command: Command, result: Promise<R>): Promise<R> {
    if (command.type !== 'Allocate') return result
    try {
      const answer = await result
      const status = (answer as { status?: unknown } | null)?.status
      if (typeof status === 'string') metrics.lineOutcome(status as LineOutcome)
      return answer
    } catch (error) {
      if (error instanceof LineConflict) metrics.lineOutcome('line_conflict')
      throw error
    }
  }

  return {
    handle<C extends Command>(command: C) {
      // Grouping applies to the standard allocate handler; a registry that replaces it is called as given.
      if (command.type === 'Allocate' && handlers.commands.Allocate === commandHandlers.Allocate) {
        return counted(command, allocateGrouped(command.sku, command) as Promise<CommandResults[C['type']]>)
      }
      return counted(command, handleAlone(command))
    },
    handleOnce<C extends Command>(messageId: string, command: C) {
      return counted(command, handleOnce(messageId, command))
    },
    async deliver(stored) {
      const [raised, succeeded] = await handleEvent(stored, true)
      return (await drain(raised, true)) && succeeded
    },
  }

  async function handleAlone<C extends Command>(command: C): Promise<CommandResults[C['type']]> {
    // The registry's mapped type pairs each command type with its handler; TypeScript cannot follow that link.
    const handler = handlers.commands[command.type] as unknown as CommandHandler<C>
    const [result, events] = await inUnitOfWork((handlerDeps) => handler(command, handlerDeps))
    await drain(events, false)
    return result
  }

  async function handleOnce<C extends Command>(messageId: string, command: C) {
    const handler = handlers.commands[command.type] as unknown as CommandHandler<C>
    const [result, events] = await inUnitOfWork(async (handlerDeps) =>
      (await handlerDeps.uow.claimMessage(messageId)) ? handler(command, handlerDeps) : null,
    )
    await drain(events, false)
    return result
  }
}

function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(100, 2 ** attempt)
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling))
}
