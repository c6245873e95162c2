import { isDeepStrictEqual } from 'node:util'
import type { State } from './mixed-state.ts'

type Line = {
  status: 'allocated' | 'held' | 'backordered' | 'moving'
  batchref: string | null
  qty: number
  expiresAt: string | null
  /** The outbox id of its first event: its place in the backorder queue. */
  accepted: number
}
/** What the events say happened to one line (`sku orderid`) over the run. */
export type Story = {
  allocatedOn: Set<string>
  held: Set<string>
  backordered: boolean
  qtys: Set<number>
  refusals: number
  cancels: number
  shrunkOff: boolean
}
export const newStory = (): Story => ({
  allocatedOn: new Set(),
  held: new Set(),
  backordered: false,
  qtys: new Set(),
  refusals: 0,
  cancels: 0,
  shrunkOff: false,
})
type BatchHistory = { sku: string; created: number; qtys: Set<number>; etas: Set<string | null> }

/**
 * Plays the events back, a sku at a time, checking that each follows from the state it finds: a new line
 * goes to the batch the preference gives (or waits, or is refused, only when none can take it), waiting
 * lines are filled oldest first, each on the batch it prefers, after the rest of their transaction; and
 * after each transaction (the events of one `xid`) that no batch is oversold and no waiting line fits.
 * A line's place in the queue is its first event (a hold that expired and is placed again keeps it).
 */
export function replayEvents(outbox: State['outbox']) {
  const problems: string[] = []
  const lines = new Map<string, Line>()
  const batches = new Map<string, { sku: string; purchased: number; eta: string | null; seq: number }>()
  const onBatch = new Map<string, number>()
  const stories = new Map<string, Story>()
  const history = new Map<string, BatchHistory>()
  const lags: number[] = []
  let filled = 0
  const setLine = (key: string, next: Line | undefined) => {
    const old = lines.get(key)
    if (old?.batchref) onBatch.set(old.batchref, (onBatch.get(old.batchref) ?? 0) - old.qty)
    if (next?.batchref) onBatch.set(next.batchref, (onBatch.get(next.batchref) ?? 0) + next.qty)
    if (next) lines.set(key, next)
    else lines.delete(key)
  }
  /** The sku's batches in preference order (warehouse, earliest eta, first created), with what each has left. */
  const available = (sku: string) =>
    [...batches]
      .filter(([, b]) => b.sku === sku)
      .sort(([, a], [, b]) => (a.eta ?? '').localeCompare(b.eta ?? '') || a.seq - b.seq)
      .map(([ref, b]): [string, number] => [ref, b.purchased - (onBatch.get(ref) ?? 0)])
  const preferred = (sku: string, qty: number) => available(sku).find(([, left]) => left >= qty)?.[0] ?? null
  const fillsOf = (sku: string) => {
    const left = new Map(available(sku))
    const waiting = [...lines].filter(([key, l]) => key.startsWith(`${sku} `) && l.status === 'backordered')
    const fills: string[] = []
    for (const [key, line] of waiting.sort(([, a], [, b]) => a.accepted - b.accepted)) {
      const ref = [...left].find(([, room]) => room >= line.qty)?.[0]
      if (ref === undefined) continue
      fills.push(`${key} on ${ref}`)
      left.set(ref, (left.get(ref) ?? 0) - line.qty)
    }
    return fills
  }
  const storyOf = (key: string) => {
    const story = stories.get(key) ?? newStory()
    stories.set(key, story)
    return story
  }
  const checkSku = (sku: string, xid: string) => {
    const all = available(sku)
    for (const [ref, left] of all) if (left < 0) problems.push(`after ${xid}, ${ref} is oversold by ${-left}`)
    const largest = Math.max(0, ...all.map(([, left]) => left))
    for (const [key, line] of lines) {
      if (!key.startsWith(`${sku} `)) continue
      if (line.status === 'moving') problems.push(`${key} left its batch in ${xid} and went nowhere`)
      if (line.status === 'backordered' && line.qty <= largest) {
        problems.push(`after ${xid}, ${key} waits for ${line.qty} while a batch has ${largest}`)
      }
    }
  }

  const bySku = Map.groupBy(outbox, (row) => String(row.payload.sku))
  for (const [sku, rows] of bySku) {
    let previous = { xid: '', type: '', key: '' }
    let fills: string[] | null = null
    const expired = new Map<string, number>()
    for (const [i, { id, xid, payload: e, created }] of rows.entries()) {
      const key = `${sku} ${e.orderid}`
      const line = lines.get(key)
      const story = e.orderid === undefined ? null : storyOf(key)
      const wrong = (why: string) =>
        problems.push(`event ${id} ${JSON.stringify(e)}: ${why} (line was ${JSON.stringify(line ?? null)})`)
      if (story && line && line.qty !== e.qty) wrong('qty differs from the line')
      story?.qtys.add(e.qty as number)
      const batchref = e.batchref as string
      const qty = e.qty as number
      const accepted = expired.get(key) ?? id

      const filling = e.type === 'Allocated' && line?.status === 'backordered'
      if (filling) {
        filled += 1
        fills ??= fillsOf(sku)
        const expected = fills.shift()
        if (expected !== `${key} on ${batchref}`) wrong(`the queue gives ${expected ?? 'no more fills'}`)
      } else if (fills !== null) wrong('follows the filling of backorders in its transaction')
      const placed = line === undefined && ['Allocated', 'Held', 'Backordered', 'OutOfStock'].includes(e.type)
      if (placed) {
        const best = preferred(sku, qty)
        const waits = e.type === 'Backordered' || e.type === 'OutOfStock'
        if (waits ? best !== null : best !== batchref) wrong(`the preferred batch is ${best}`)
      }

      switch (e.type) {
        case 'BatchCreated':
        case 'BatchQuantityChanged':
        case 'BatchEtaChanged': {
          const ref = e.ref as string
          const batch = batches.get(ref)
          if ((e.type === 'BatchCreated') !== (batch === undefined)) wrong('the batch exists, or does not')
          const next = { sku, purchased: batch?.purchased ?? 0, eta: batch?.eta ?? null, seq: batch?.seq ?? id }
          if (e.type !== 'BatchEtaChanged') next.purchased = qty
          if (e.type !== 'BatchQuantityChanged') next.eta = e.eta as string | null
          batches.set(ref, next)
          const past = history.get(ref) ?? { sku, created: 0, qtys: new Set(), etas: new Set() }
          if (e.type === 'BatchCreated') past.created += 1
          past.qtys.add(next.purchased)
          past.etas.add(next.eta)
          history.set(ref, past)
          break
        }
        case 'Allocated': {
          const confirmed = line?.status === 'held' && line.batchref === batchref
          if (!(line === undefined || filling || line.status === 'moving' || confirmed)) wrong('allocated again')
          setLine(key, { status: 'allocated', batchref, qty, expiresAt: null, accepted: line?.accepted ?? accepted })
          story?.allocatedOn.add(batchref)
          break
        }
        case 'Held': {
          const expiresAt = e.expiresAt as string
          const extended = line?.status === 'held' && line.batchref === batchref && expiresAt > (line.expiresAt ?? '')
          const moved = line?.status === 'held' && line.batchref !== batchref && expiresAt === line.expiresAt
          if (line !== undefined && !extended && !moved) wrong('a hold that is not new, extended or moved')
          if (moved && story) story.shrunkOff = true
          setLine(key, { status: 'held', batchref, qty, expiresAt, accepted: line?.accepted ?? accepted })
          story?.held.add(`${batchref} ${expiresAt}`)
          break
        }
        case 'Backordered':
          if (line !== undefined && line.status !== 'moving') wrong('backordered again')
          setLine(key, {
            status: 'backordered',
            batchref: null,
            qty,
            expiresAt: null,
            accepted: line?.accepted ?? accepted,
          })
          if (story) story.backordered = true
          break
        case 'OutOfStock': {
          const companion = previous.xid === xid && previous.type === 'Backordered' && previous.key === key
          if ('backordered' in e && e.backordered !== companion) wrong('backordered says otherwise')
          if (line !== undefined && !companion) wrong('out of stock for a line that is kept')
          if (!companion && story) story.refusals += 1
          break
        }
        case 'Deallocated':
          if (line?.status !== 'allocated' || line.batchref !== batchref) wrong('deallocated from where it is not')
          if (e.reason === 'batch-shrunk' && line) {
            setLine(key, { ...line, status: 'moving', batchref: null })
            if (story) story.shrunkOff = true
          } else {
            setLine(key, undefined)
            if (story) story.cancels += 1
          }
          break
        case 'HoldReleased':
          if (line?.status !== 'held' || line.batchref !== batchref) wrong('released a hold that is not there')
          if (e.reason === 'cancelled' && story) story.cancels += 1
          if (e.reason === 'batch-shrunk' && story) story.shrunkOff = true
          if (e.reason === 'expired' && line?.expiresAt) {
            lags.push(created.getTime() - Date.parse(line.expiresAt))
            expired.set(key, line.accepted)
          }
          setLine(key, undefined)
          break
        case 'BackorderCancelled':
          if (line?.status !== 'backordered') wrong('cancelled a backorder that is not waiting')
          setLine(key, undefined)
          if (story) story.cancels += 1
          break
        default:
          wrong('an event of an unknown type')
      }
      previous = { xid, type: e.type, key }
      if (rows[i + 1]?.xid !== xid) {
        if (fills?.length) problems.push(`transaction ${xid} left waiting what the queue fills: ${fills.join(', ')}`)
        checkSku(sku, `transaction ${xid} (event ${id})`)
        fills = null
        expired.clear()
      }
    }
  }
  return { problems, lines, batches, stories, history, lags, filled }
}

export type Replay = ReturnType<typeof replayEvents>

export function finalStateAgrees(replay: Replay, state: State): string[] {
  const problems: string[] = []
  const stored = new Set<string>()
  for (const l of state.lines) {
    const key = `${l.sku} ${l.orderid}`
    if (stored.has(key)) problems.push(`${key} has two lines`)
    stored.add(key)
    const told = replay.lines.get(key)
    const as = { status: l.status, batchref: l.batchref, qty: l.qty }
    if (!told || !isDeepStrictEqual(as, { status: told.status, batchref: told.batchref, qty: told.qty })) {
      problems.push(`${key} is ${JSON.stringify(as)}; the events say ${JSON.stringify(told ?? 'gone')}`)
    }
  }
  for (const [key, told] of replay.lines) {
    if (!stored.has(key)) problems.push(`${key} is gone; the events say ${JSON.stringify(told)}`)
  }
  for (const b of state.batches) {
    const told = replay.batches.get(b.ref)
    if (told?.purchased !== b.purchased || told.eta !== b.eta) {
      problems.push(`${b.ref} has ${b.purchased}, eta ${b.eta}; the events say ${JSON.stringify(told)}`)
    }
  }
  if (replay.batches.size !== state.batches.length) problems.push(`the events tell of ${replay.batches.size} batches`)
  return problems
}
