import { OutageLog } from './outage-log.ts'
import type { Logger, ReadViews, StoredEvent } from './ports.ts'

/** Someone reading the stream of committed events: a browser on `/events/stream`, say. */
export interface FeedReader {
  /** Takes the next events, in outbox order. Must not block: a reader that cannot keep up drops itself. */
  send(events: readonly StoredEvent[]): void
  /** Resolves when the reader has room for more; catching up waits for it between pages. */
  ready(): Promise<void>
}

export interface EventFeed {
  /**
   * Sends `reader` every event committed after event `after`, first from the database until it has
   * caught up, then from the feed's shared poll. Returns the function that stops it.
   */
  subscribe(after: number, reader: FeedReader): Promise<() => void>
  /** How many readers are subscribed. */
  readonly size: number
  /** Stops polling and forgets every reader. */
  close(): void
}

type Subscription = { reader: FeedReader; cursor: number }

const PAGE = 500

/**
 * One poll of the outbox for every reader in the process: however many browsers watch, the database
 * sees one query per interval (and none while nobody watches). A reader's pace never holds the poll up.
 */
export function createEventFeed(
  deps: Readonly<{ views: Pick<ReadViews, 'events' | 'lastEventId'>; logger: Logger; intervalMs?: number }>,
): EventFeed {
  const { views, logger } = deps
  const intervalMs = deps.intervalMs ?? 250
  const live = new Set<Subscription>()
  let catchingUp = 0
  /** Set while the poll runs: resolves once `head` is known. */
  let started: Promise<void> | null = null
  /** The newest event the poll has handed out. */
  let head = 0
  let timer: NodeJS.Timeout | undefined
  let closed = false
  // Polled every 250 ms while someone reads: a database outage would be four lines a second.
  const reading = new OutageLog(logger, 'reading new events for the event stream')

  function start(): Promise<void> {
    started ??= views.lastEventId().then(
      (id) => {
        head = id
        timer = setTimeout(() => void tick(), intervalMs)
      },
      (error: unknown) => {
        started = null
        throw error
      },
    )
    return started
  }

  async function tick(): Promise<void> {
    try {
      for (;;) {
        const events = await views.events(head, PAGE)
        if (events.length === 0 || closed) break
        head = events.at(-1)?.id ?? head
        for (const subscription of live) deliver(subscription, events)
        if (events.length < PAGE) break
        // Let the sockets take this page before the next: a reader is judged by what it leaves unread.
        await new Promise((resolve) => setImmediate(resolve))
      }
      reading.succeeded()
    } catch (error) {
      reading.failed(error)
    }
    if (closed || (live.size === 0 && catchingUp === 0)) started = null
    else timer = setTimeout(() => void tick(), intervalMs)
  }

  function deliver(subscription: Subscription, events: readonly StoredEvent[]): void {
    const fresh = events.filter((e) => e.id > subscription.cursor)
    if (fresh.length === 0) return
    subscription.cursor = fresh.at(-1)?.id ?? subscription.cursor
    subscription.reader.send(fresh)
  }

  return {
    async subscribe(after, reader) {
      catchingUp++
      try {
        const subscription: Subscription = { reader, cursor: after }
        await start()
        // Catch up from the database. Nothing is awaited between the last comparison with `head` and
        // joining the poll's readers, so no event falls between the two.
        while (subscription.cursor < head && !closed) {
          const events = await views.events(subscription.cursor, PAGE)
          if (events.length === 0) break
          deliver(subscription, events)
          await reader.ready()
        }
        if (closed) return () => {}
        live.add(subscription)
        return () => live.delete(subscription)
      } finally {
        catchingUp--
      }
    },
    get size() {
      return live.size
    },
    close() {
      closed = true
      clearTimeout(timer)
      live.clear()
    },
  }
}
