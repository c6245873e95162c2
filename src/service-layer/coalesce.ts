/**
 * Runs `work` on items in groups per key: items that arrive while a group of their key is being worked
 * on wait and go together in the next one, so concurrent callers share one transaction or round trip.
 * A group's work returns one result per item, in order; an `Error` in place of a result rejects that
 * item's caller only. With `lingerMs`, a new group waits that long for more items before it starts.
 * With `turn`, each group is formed only once its turn is granted (a lock on a shared resource), so the
 * items that arrive while it waits go with it; the turn is given back when the group's work ends.
 * The groups coordinate work, they guard no data: the database still does.
 */
export function coalesce<K, I, R>(
  work: (key: K, items: I[]) => Promise<Array<R | Error>>,
  {
    maxGroup = 100,
    lingerMs = 0,
    turn,
  }: { maxGroup?: number; lingerMs?: number; turn?: () => Promise<() => void> } = {},
): (key: K, item: I) => Promise<R> {
  type Waiting = { item: I; resolve: (result: R) => void; reject: (error: unknown) => void }
  const queues = new Map<K, Waiting[]>()

  async function run(key: K, queue: Waiting[]): Promise<void> {
    // The first item of a round may wait a little for company, where fewer statements matter more than latency.
    if (lingerMs > 0) await new Promise((resolve) => setTimeout(resolve, lingerMs))
    while (queue.length > 0) {
      const giveBack = turn ? await turn() : () => {}
      const group = queue.splice(0, maxGroup)
      try {
        const results = await work(
          key,
          group.map((w) => w.item),
        )
        for (const [i, waiting] of group.entries()) {
          const result = results[i] as R | Error
          if (result instanceof Error) waiting.reject(result)
          else waiting.resolve(result)
        }
      } catch (error) {
        for (const waiting of group) waiting.reject(error)
      } finally {
        giveBack()
      }
    }
    queues.delete(key)
  }

  return (key, item) =>
    new Promise<R>((resolve, reject) => {
      const queue = queues.get(key)
      if (queue) {
        queue.push({ item, resolve, reject })
        return
      }
      const fresh = [{ item, resolve, reject }]
      queues.set(key, fresh)
      void run(key, fresh)
    })
}
