import type { OutboxRow } from './redis-mixed-state.ts'

export type LineNow = { status: 'allocated' | 'held' | 'backordered' | 'moving'; batchref: string | null; qty: number }

/**
 * The lines and batches the events tell, in outbox order (per sku, the order of the commits). A line's
 * `initials` are the events that met it absent (allocated, held, waiting or refused: one per allocation
 * that found no line); its `cancels` the ends asked for (one per cancellation).
 */
export function replayEvents(outbox: readonly OutboxRow[]) {
  const lines = new Map<string, LineNow>()
  const batches = new Map<string, { sku: string; purchased: number; eta: string | null }>()
  const initials = new Map<string, number>()
  const cancels = new Map<string, number>()
  const problems: string[] = []
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
  for (const { id, payload: e } of outbox) {
    const key = `${e.sku} ${e.orderid}`
    const line = lines.get(key)
    const batchref = (e.batchref ?? null) as string | null
    const qty = e.qty as number
    const wrong = (why: string) =>
      problems.push(`event ${id} ${JSON.stringify(e)}: ${why}; the line was ${JSON.stringify(line ?? 'absent')}`)
    switch (e.type) {
      case 'BatchCreated':
        if (batches.has(e.ref as string)) wrong('a batch created twice')
        batches.set(e.ref as string, { sku: e.sku as string, purchased: qty, eta: e.eta as string | null })
        break
      case 'BatchQuantityChanged':
      case 'BatchEtaChanged': {
        const batch = batches.get(e.ref as string)
        if (!batch) wrong('a change of a batch never created')
        else if (e.type === 'BatchQuantityChanged') batch.purchased = qty
        else batch.eta = e.eta as string | null
        break
      }
      case 'Allocated':
        if (!line) add(initials, key)
        else if (line.status === 'allocated') wrong('allocated twice')
        lines.set(key, { status: 'allocated', batchref, qty })
        break
      case 'Held':
        if (!line) add(initials, key)
        else if (line.status !== 'held' && line.status !== 'moving') wrong('a hold of a line that is not held')
        lines.set(key, { status: 'held', batchref, qty })
        break
      case 'Backordered':
        if (!line) add(initials, key)
        else if (line.status !== 'moving') wrong('backordered again')
        lines.set(key, { status: 'backordered', batchref: null, qty })
        break
      case 'OutOfStock':
        if (e.backordered === true && line?.status !== 'backordered') wrong('out of stock, waiting, but not waiting')
        if (e.backordered === false && line) wrong('refused, but the line is kept')
        if (e.backordered === false) add(initials, key)
        break
      case 'Deallocated':
        if (line?.status !== 'allocated' || line.batchref !== batchref) wrong('deallocated from where it is not')
        if (e.reason === 'requested') {
          add(cancels, key)
          lines.delete(key)
        } else lines.set(key, { status: 'moving', batchref: null, qty })
        break
      case 'HoldReleased':
        if (line?.status !== 'held' || line.batchref !== batchref) wrong('released a hold that is not there')
        if (e.reason === 'cancelled') add(cancels, key)
        lines.delete(key)
        break
      case 'BackorderCancelled':
        if (line?.status !== 'backordered') wrong('cancelled a wait that is not there')
        add(cancels, key)
        lines.delete(key)
        break
      default:
        wrong('an event of an unknown type')
    }
  }
  for (const [key, line] of lines) if (line.status === 'moving') problems.push(`${key} was moved off and never landed`)
  return { lines, batches, initials, cancels, problems }
}

export type Replay = ReturnType<typeof replayEvents>
