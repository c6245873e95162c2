import { describe, expect, it, vi } from 'vitest'
import { createEventFeed, type FeedReader } from '../../src/service-layer/event-feed.ts'
import type { StoredEvent } from '../../src/service-layer/ports.ts'
import { FakeLogger } from './fakes.ts'

/** An outbox in memory, counting how often it is read. */
function fakeOutbox() {
  const stored: StoredEvent[] = []
  const reads: number[] = []
  return {
    stored,
    reads,
    commit(count = 1) {
      for (let i = 0; i < count; i++) {
        stored.push({
          id: stored.length + 1,
          event: { type: 'OutOfStock', orderid: 'o', sku: 'LAMP', qty: 1, backordered: false },
        })
      }
    },
    views: {
      async events(after: number, limit: number) {
        reads.push(after)
        return stored.filter((e) => e.id > after).slice(0, limit)
      },
      async lastEventId() {
        return stored.at(-1)?.id ?? 0
      },
    },
  }
}

function reader(): FeedReader & { ids: number[] } {
  const ids: number[] = []
  return { ids, send: (events) => ids.push(...events.map((e) => e.id)), ready: async () => {} }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe('event feed', () => {
  it('sends a reader that starts at the newest event only the events committed after it', async () => {
    const outbox = fakeOutbox()
    const feed = createEventFeed({ views: outbox.views, logger: new FakeLogger(), intervalMs: 1 })
    outbox.commit(3)
    const alice = reader()
    await feed.subscribe(3, alice)
    outbox.commit(2)
    await vi.waitFor(() => expect(alice.ids).toEqual([4, 5]))
    feed.close()
  })

  it('catches a reader up from its last event id, then streams what follows, each event once', async () => {
    const outbox = fakeOutbox()
    const feed = createEventFeed({ views: outbox.views, logger: new FakeLogger(), intervalMs: 1 })
    outbox.commit(1200)
    const alice = reader()
    await feed.subscribe(2, alice)
    outbox.commit(3)
    await vi.waitFor(() => expect(alice.ids).toEqual(range(3, 1203)))
    feed.close()
  })

  it('reads the outbox once per poll however many readers there are', async () => {
    const outbox = fakeOutbox()
    const feed = createEventFeed({ views: outbox.views, logger: new FakeLogger(), intervalMs: 1 })
    const readers = Array.from({ length: 20 }, reader)
    for (const r of readers) await feed.subscribe(0, r)
    outbox.reads.length = 0
    outbox.commit(5)
    await vi.waitFor(() => expect(readers.every((r) => r.ids.length === 5)).toBe(true))
    // Every read starts where the feed is, never where a reader is: the new events were read once, not per reader.
    expect(outbox.reads.filter((after) => after === 0)).toHaveLength(1)
    expect(outbox.reads.every((after) => after === 0 || after === 5)).toBe(true)
    feed.close()
  })

  it('stops polling when the last reader leaves, and polls again for the next', async () => {
    vi.useFakeTimers()
    try {
      const outbox = fakeOutbox()
      const feed = createEventFeed({ views: outbox.views, logger: new FakeLogger(), intervalMs: 10 })
      const unsubscribe = await feed.subscribe(0, reader())
      unsubscribe()
      await vi.advanceTimersByTimeAsync(10)
      outbox.reads.length = 0
      await vi.advanceTimersByTimeAsync(1000)
      expect(outbox.reads).toEqual([])

      outbox.commit(2)
      const bob = reader()
      await feed.subscribe(2, bob)
      outbox.commit(1)
      await vi.advanceTimersByTimeAsync(10)
      expect(bob.ids).toEqual([3])
      expect(feed.size).toBe(1)
      feed.close()
      expect(feed.size).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })

  it('keeps serving the other readers when one is dropped', async () => {
    const outbox = fakeOutbox()
    const feed = createEventFeed({ views: outbox.views, logger: new FakeLogger(), intervalMs: 1 })
    const alice = reader()
    const bob = reader()
    const dropAlice = await feed.subscribe(0, alice)
    await feed.subscribe(0, bob)
    outbox.commit(1)
    await vi.waitFor(() => expect(alice.ids).toEqual([1]))
    dropAlice()
    outbox.commit(1)
    await vi.waitFor(() => expect(bob.ids).toEqual([1, 2]))
    expect(alice.ids).toEqual([1])
    feed.close()
  })
})
