import { isDeepStrictEqual } from 'node:util'
import { tally } from '../support/seeded-random.ts'
import type { Published, Sent } from './redis-mixed-messages.ts'
import { EVENTS, groupBy, LINE_ALLOCATED, parsed } from './redis-mixed-redis.ts'
import type { Replay } from './redis-mixed-replay.ts'
import type { Requested } from './redis-mixed-requests.ts'
import { changesOf, type OutboxRow, type State } from './redis-mixed-state.ts'
import type { RunningService } from './support.ts'

/** Each answer is one the contract gives the request, and what it says it changed is in the events once. */
export function httpAnswers(requested: readonly Requested[], outbox: readonly OutboxRow[]): string[] {
  const problems: string[] = []
  const changes = changesOf(outbox)
  for (const { method, path, body = {}, allowed, answer } of requested) {
    const what = `${method} ${path} ${JSON.stringify(body)} answered ${answer.status} ${JSON.stringify(answer.body)}`
    if (!allowed.includes(answer.status)) problems.push(what)
    const code = answer.body?.code
    if (answer.status === 409 && code !== 'out_of_stock') problems.push(what)
    if (answer.status === 404 && code !== 'not_allocated') problems.push(what)
    if (method !== 'PATCH' || answer.status !== 200) continue
    const ref = path.split('/')[2]
    if ('qty' in body && changes(`qty ${ref} ${body.qty}`) !== 1) problems.push(`${what}: not in the events once`)
    if (body.eta && changes(`eta ${ref} ${body.eta}`) !== 1) problems.push(`${what}: not in the events once`)
  }
  return problems
}

export function finalStateAgrees(replay: Replay, state: State): string[] {
  const problems: string[] = []
  const stored = new Set<string>()
  for (const l of state.lines) {
    const key = `${l.sku} ${l.orderid}`
    stored.add(key)
    const told = replay.lines.get(key)
    const as = { status: l.status, batchref: l.batchref, qty: l.qty }
    if (!isDeepStrictEqual(as, told))
      problems.push(`${key} is ${JSON.stringify(as)}; the events say ${JSON.stringify(told)}`)
  }
  for (const [key, told] of replay.lines) {
    if (!stored.has(key)) problems.push(`${key} is gone; the events say ${JSON.stringify(told)}`)
  }
  for (const b of state.batches) {
    const told = replay.batches.get(b.ref)
    if (!isDeepStrictEqual(told, { sku: b.sku, purchased: b.purchased, eta: b.eta })) {
      problems.push(`${b.ref} has ${b.purchased}, eta ${b.eta}; the events say ${JSON.stringify(told)}`)
    }
  }
  if (replay.batches.size !== state.batches.length) problems.push(`the events tell of ${replay.batches.size} batches`)
  return problems
}

/** Every batch's allocated qty is the sum of its allocated and held lines, and no more than it has. */
export function oversold({ batches, lines }: State): string[] {
  return batches.flatMap((b) => {
    const onIt = lines.filter((l) => l.batchref === b.ref).reduce((total, l) => total + l.qty, 0)
    return onIt === b.allocated && b.allocated <= b.purchased
      ? []
      : [`${b.ref}: purchased ${b.purchased}, allocated ${b.allocated}, lines on it ${onIt}`]
  })
}

export function fittingBackorders({ batches, lines }: State): string[] {
  return lines
    .filter((l) => l.status === 'backordered')
    .flatMap((l) => {
      const fits = batches.find((b) => b.sku === l.sku && b.purchased - b.allocated >= l.qty)
      return fits
        ? [`${l.orderid} ${l.sku} (${l.qty}) waits, but ${fits.ref} has ${fits.purchased - fits.allocated}`]
        : []
    })
}

/** Each committed event is on the stream as committed, with its outbox id; nothing else is there. */
export function publishedEvents(outbox: readonly OutboxRow[], entries: Record<string, string>[]): string[] {
  const problems: string[] = []
  const byId = groupBy(entries, (entry) => entry.id)
  for (const { id, payload } of outbox) {
    const found = byId.get(String(id)) ?? []
    if (found.length === 0) problems.push(`event ${id} ${JSON.stringify(payload)} is not on ${EVENTS}`)
    for (const entry of found) {
      if (entry.type !== payload.type || !isDeepStrictEqual(parsed(entry.payload ?? ''), payload)) {
        problems.push(`event ${id} ${JSON.stringify(payload)} is on ${EVENTS} as ${JSON.stringify(entry)}`)
      }
    }
    byId.delete(String(id))
  }
  for (const [id] of byId) problems.push(`${EVENTS} has an event ${id} the outbox does not`)
  return problems
}

/** Each `Allocated` of our skus reached the book's channel with the book's payload, as often at least. */
export function bookChannel(
  outbox: readonly OutboxRow[],
  received: readonly unknown[],
  skus: ReadonlySet<string>,
): string[] {
  const heard = new Map<string, number>()
  for (const message of received) {
    const key = JSON.stringify(message)
    if (skus.has((message as { sku?: string })?.sku ?? '')) heard.set(key, (heard.get(key) ?? 0) + 1)
  }
  const problems: string[] = []
  for (const { id, payload: e } of outbox) {
    if (e.type !== 'Allocated') continue
    const key = JSON.stringify({ orderid: e.orderid, sku: e.sku, qty: e.qty, batchref: e.batchref })
    const left = heard.get(key) ?? 0
    if (left === 0) problems.push(`event ${id} ${key} never reached ${LINE_ALLOCATED}`)
    heard.set(key, left - 1)
  }
  return problems
}

/** What the processes logged at level error or worse (pino's 50 and 60). */
export function errorsLogged(processes: readonly RunningService[]): string[] {
  return processes.flatMap((p) =>
    p
      .output()
      .split('\n')
      .filter((line) => /"level":(5|6)\d/.test(line))
      .map((line) => `process ${p.pid}: ${line.slice(0, 600)}`),
  )
}

export function summary(
  sent: readonly Sent[],
  published: readonly Published[],
  requested: readonly Requested[],
  outbox: readonly OutboxRow[],
): string {
  return (
    `${sent.length} stream entries (${tally(sent.map((s) => `${s.command?.type ?? 'malformed'} ${s.allowed.join('|')}`))}); ` +
    `${published.length} channel messages (${published.filter((p) => p.valid).length} valid); ` +
    `${requested.length} HTTP requests (${tally(requested.map((r) => `${r.method} ${r.answer.status}`))}); ` +
    `${outbox.length} events (${tally(outbox.map((e) => e.payload.type))})`
  )
}
