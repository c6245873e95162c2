import { isDeepStrictEqual } from 'node:util'
import { tally } from '../support/seeded-random.ts'
import type { Body, Op, Sent } from './mixed-load.ts'
import { newStory, type Replay } from './mixed-replay.ts'
import type { State } from './mixed-state.ts'
import type { Answer } from './support.ts'

/** The statuses (and codes) the contract gives a request of the mix, whatever the interleaving. */
function allowedAnswers({ method, path, body = {} }: Op, initialRefs: ReadonlySet<string>, skus: readonly string[]) {
  const known = skus.includes(String(body.sku ?? path.split('/')[3]))
  if (path === '/allocations') {
    if (!known) return ['400 invalid_sku']
    if (body.backorder && body.holdSeconds) return ['400 validation_failed']
    return ['201', '202', '409 line_conflict', ...(body.backorder ? [] : ['409 out_of_stock'])]
  }
  if (path === '/allocate') return known ? ['202', '409 line_conflict'] : ['400 invalid_sku']
  if (method === 'DELETE') return ['204', '404 not_allocated']
  const ref = String(body.ref ?? path.split('/')[2])
  // A batch made during the load may not be there yet when it is changed.
  if (method === 'PATCH' && initialRefs.has(ref)) return ['200']
  if (method === 'PATCH') return ref.includes('unknown') ? ['404 unknown_batch'] : ['200', '404 unknown_batch']
  if (method === 'POST') return initialRefs.has(ref) ? ['201', '200', '409 batch_conflict'] : ['201']
  return path.startsWith('/orders/') ? ['200', '404 unknown_order'] : ['200']
}

export const codeOf = ({ status, body }: Answer) => (status >= 400 ? `${status} ${body?.code}` : `${status}`)

/**
 * Each answer has a status and code the contract gives its request, and what it acknowledged is in the
 * events: the batch and expiry of a line allocated or held, a wait, a refusal, a cancellation (one event
 * per 204), a batch's change. A request whose outcome is `unknown` (no answer came, from a process that
 * was killed) may have done what it asked or nothing: it widens the counts the events must fall within.
 */
export function checkAnswers(
  sent: readonly Sent[],
  replay: Replay,
  initialRefs: ReadonlySet<string>,
  skus: readonly string[],
  unknown: (sent: Sent) => boolean = () => false,
) {
  const failed: string[] = []
  const untold: string[] = []
  const cancelled = new Map<string, number>()
  const maybeCancelled = new Map<string, number>()
  const refused = new Map<string, [number, number]>()
  const created = new Map<string, number>()
  const maybeCreated = new Map<string, number>()
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
  for (const one of sent) {
    const { op, answer } = one
    const { method, path } = op
    const body = (op.body ?? {}) as Body
    if (unknown(one)) {
      const [, , orderid, sku] = path.split('/')
      const key = `${body.sku} ${body.orderid}`
      const [certain, possible] = refused.get(key) ?? [0, 0]
      if (method === 'DELETE') add(maybeCancelled, `${sku} ${orderid}`)
      if (path === '/allocate' || (path === '/allocations' && !body.backorder))
        refused.set(key, [certain, possible + 1])
      if (method === 'POST' && path === '/batches') add(maybeCreated, String(body.ref))
      continue
    }
    const said = codeOf(answer)
    const allowed = allowedAnswers(op, initialRefs, skus)
    if (!allowed.includes(said)) {
      failed.push(`${method} ${path} ${JSON.stringify(body)} answered ${answer.status} ${JSON.stringify(answer.body)}`)
      continue
    }

    const key = `${body.sku} ${body.orderid}`
    const story = replay.stories.get(key) ?? newStory()
    const a = answer.body
    const tell = (why: string) =>
      untold.push(`${method} ${path} ${JSON.stringify(body)} answered ${answer.status} ${JSON.stringify(a)}: ${why}`)
    if (path === '/allocations' && answer.status === 201) {
      if (a.status === 'held' && !body.holdSeconds) tell('a hold nobody asked for')
      if (a.status === 'allocated' && !story.allocatedOn.has(a.batchref)) tell('no Allocated event on that batch')
      if (a.status === 'held' && !story.held.has(`${a.batchref} ${a.expiresAt}`))
        tell('no Held event with that batch and expiry')
      if (a.qty !== body.qty || a.orderid !== body.orderid) tell('another line')
    }
    if (path === '/allocations' && answer.status === 202 && (a.status !== 'backordered' || !story.backordered)) {
      tell('no Backordered event')
    }
    if (path === '/allocate' && answer.status === 202) {
      if (a.batchref === null ? story.refusals === 0 && !story.backordered : !story.allocatedOn.has(a.batchref)) {
        tell('the events do not tell it')
      }
    }
    if (said === '409 line_conflict' && ![...story.qtys].some((qty) => qty !== body.qty)) tell('no line of another qty')
    if (said === '409 out_of_stock' || (path === '/allocate' && answer.status === 202 && a.batchref === null)) {
      const [certain, possible] = refused.get(key) ?? [0, 0]
      refused.set(key, said === '409 out_of_stock' ? [certain + 1, possible + 1] : [certain, possible + 1])
    }
    if (method === 'DELETE') {
      const [, , orderid, sku] = path.split('/')
      if (answer.status === 204) add(cancelled, `${sku} ${orderid}`)
    }
    if (method === 'PATCH' && answer.status === 200) {
      const past = replay.history.get(a.batch.ref)
      if ('qty' in body && !past?.qtys.has(body.qty as number)) tell('the batch never had that qty')
      if ('eta' in body && !past?.etas.has(body.eta as string | null)) tell('the batch never had that eta')
      for (const moved of a.moved) {
        if (!replay.stories.get(`${moved.sku} ${moved.orderid}`)?.shrunkOff)
          tell(`${moved.orderid} was never moved off`)
      }
    }
    if (method === 'POST' && path === '/batches' && answer.status < 300) {
      const past = replay.history.get(String(body.ref))
      if (!past?.qtys.has(body.qty as number) || !past.etas.has(body.eta as string | null) || past.sku !== body.sku) {
        tell('the events never had that batch')
      }
      if (answer.status === 201) add(created, String(body.ref))
    }
    if (path.includes('/availability') && answer.status === 200) {
      const first = a.batches.find((b: { fits: boolean }) => b.fits)
      const promise = first ? { batchref: first.ref, eta: first.eta } : null
      if (!isDeepStrictEqual(a.promise, promise)) tell('the promise is not the first batch that fits')
    }
  }
  for (const [key, story] of replay.stories) {
    const [done, maybe] = [cancelled.get(key) ?? 0, maybeCancelled.get(key) ?? 0]
    if (story.cancels < done || story.cancels > done + maybe) {
      const unanswered = maybe > 0 ? ` and ${maybe} unanswered` : ''
      untold.push(`${key}: ${story.cancels} cancellation events for ${done} answers 204${unanswered}`)
    }
    const [certain, possible] = refused.get(key) ?? [0, 0]
    if (story.refusals < certain || story.refusals > possible) {
      untold.push(
        `${key}: ${story.refusals} refusals (OutOfStock without a wait) for ${certain} to ${possible} answers`,
      )
    }
  }
  for (const [ref, past] of replay.history) {
    const answered = created.get(ref) ?? 0
    if (past.created !== 1 || answered > 1 || answered + (maybeCreated.get(ref) ?? 0) < 1)
      untold.push(`${ref}: created ${past.created} times, ${created.get(ref)} answers 201`)
  }
  return { failed, untold }
}

/** What was sent and answered, and what the events tell, in numbers: the context of a failure. */
export function summary(sent: readonly Sent[], outbox: State['outbox'], replay: Replay): string {
  const route = ({ method, path }: Op) => `${method} ${path.split('/').slice(0, 2).join('/')}`
  const lag = replay.lags.length > 0 ? `${Math.min(...replay.lags)}..${Math.max(...replay.lags)} ms` : 'none'
  return (
    `${sent.length} requests (${tally(sent.map(({ op, answer }) => `${route(op)} ${codeOf(answer)}`))}); ` +
    `${outbox.length} events (${tally(outbox.map((e) => e.payload.type))}); ${replay.filled} backorders filled; ` +
    `transactions releasing expired holds began ${lag} after the expiry`
  )
}
