import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { postgresAvailable } from '../support/servers.ts'
import { listeningAddress } from '../support/service-process.ts'
import {
  type Answer,
  type Client,
  client,
  postgresMode,
  type RunningService,
  type Storage,
  startService,
} from './support.ts'

/**
 * A seeded random mix of every write (allocations plain, waiting and held; holds confirmed, extended and
 * cancelled; batches shrunk, raised, delayed and added; the book's /allocate) from many clients at once,
 * over several processes on one PostgreSQL database, with holds expiring meanwhile. Once the load stops
 * and the holds are released, the tables, the reads and the events must agree that nothing was oversold
 * and no accepted line was lost. MIXED_SEED replays a sequence of requests (their interleaving is up to
 * timing); MIXED_SECONDS and MIXED_PROCESSES change the load.
 */
const SEED = Number(process.env.MIXED_SEED ?? Math.floor(Math.random() * 2 ** 31))
const SECONDS = Number(process.env.MIXED_SECONDS ?? 20)
const PROCESSES = Number(process.env.MIXED_PROCESSES ?? 2)
const IN_FLIGHT = 12
const ETAS = [null, '2027-01-10', '2027-02-01', '2027-03-15']
const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

type Body = Record<string, unknown>
type Op = Readonly<{ method: string; path: string; body?: Body; process: number }>
type Sent = Readonly<{ op: Op; answer: Answer }>
type Line = {
  status: 'allocated' | 'held' | 'backordered' | 'moving'
  batchref: string | null
  qty: number
  expiresAt: string | null
  /** The outbox id of its first event: its place in the backorder queue. */
  accepted: number
}
/** What the events say happened to one line (`sku orderid`) over the run. */
type Story = {
  allocatedOn: Set<string>
  held: Set<string>
  backordered: boolean
  qtys: Set<number>
  refusals: number
  cancels: number
  shrunkOff: boolean
}
const newStory = (): Story => ({
  allocatedOn: new Set(),
  held: new Set(),
  backordered: false,
  qtys: new Set(),
  refusals: 0,
  cancels: 0,
  shrunkOff: false,
})
type BatchHistory = { sku: string; created: number; qtys: Set<number>; etas: Set<string | null> }

describe('every feature mixed, from many clients over several processes on one database', () => {
  let storage: Storage | null = null
  let database: pg.Client
  const services: RunningService[] = []

  beforeAll(async () => {
    if (!(await postgresAvailable())) return
    storage = await postgresMode.prepare()
    database = new pg.Client({ connectionString: storage.env.DATABASE_URL })
    await database.connect()
    // The first process releases the holds; the others only serve.
    const env = { ...storage.env, LOG_REQUESTS: 'false' }
    services.push(await startService(env))
    for (let i = 1; i < PROCESSES; i++) services.push(await startWithoutRelay(env))
  })
  afterAll(async () => {
    for (const service of services) expect(await service.stop(), service.output()).toBe(0)
    await database?.end()
    await storage?.drop()
  })

  it('never oversells, never loses an accepted line, and its events tell what happened', {
    timeout: (SECONDS + 100) * 1000,
  }, async (ctx) => {
    if (!storage) return ctx.skip()
    const apis = services.map((s) => client(s.url))
    const skus = Array.from({ length: 4 }, () => randomSku('mixed'))
    const initial = skus.flatMap((sku) => [
      { ref: randomBatchref('now'), sku, qty: 12, eta: null },
      { ref: randomBatchref('later'), sku, qty: 12, eta: '2027-02-01' },
    ])
    const sent: Sent[] = []
    for (const batch of initial) {
      const op = { method: 'POST', path: '/batches', body: batch, process: 0 }
      sent.push({ op, answer: await send(apis, op) })
    }
    const mix = mixOf(SEED, skus, initial)
    const deadline = Date.now() + SECONDS * 1000
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (Date.now() < deadline) {
          const op = mix()
          sent.push({ op, answer: await send(apis, op) })
        }
      }),
    )
    const stillHeld = await holdsSettled(database)
    const state = await stateOf(database)
    const events = await sameEventsOverHttp(apis[0] as Client, state.outbox)
    const replay = replayEvents(state.outbox)
    const answers = checkAnswers(sent, replay, new Set(initial.map((b) => b.ref)), skus)
    const reads = await checkReads(apis[0] as Client, state, sent, skus)

    const context = `seed ${SEED} (replay: MIXED_SEED=${SEED} MIXED_PROCESSES=${PROCESSES}); ${summary(sent, state.outbox, replay)}`
    console.info(`mixed load: ${context}`)
    const none = (problems: readonly string[], what: string, more = '') =>
      expect.soft(problems.slice(0, 25), `${context}\n${problems.length} ${what}${more}`).toEqual([])
    none(oversold(state), 'batches oversold, or whose allocated qty is not the sum of their lines')
    none(stillHeld, 'holds still held well past their expiry (they are released within 2 s)')
    none(fittingBackorders(state), 'backordered lines that fit a batch of their sku once things settled')
    none(
      answers.failed,
      'answers 5xx, or a status or code the contract does not give that request',
      serviceErrors(services),
    )
    none(events, 'differences between GET /events and the outbox')
    none(replay.problems, 'events that do not follow from the line or batch they concern (in outbox order)')
    none(finalStateAgrees(replay, state), 'differences between the lines and batches the events tell and the tables')
    none(answers.untold, 'acknowledged answers the events do not tell, or counts of them that disagree')
    none(reads, 'differences between the reads (orders, products, lines, batches) and the tables')
  })
})

/** `node src/main.ts serve --no-relay`, as `startService` starts the default `serve`. */
async function startWithoutRelay(env: Record<string, string>): Promise<RunningService> {
  const { DATABASE_URL: _url, DATA_DIR: _dir, REDIS_URL: _redis, SMTP_URL: _smtp, ...inherited } = process.env
  const child = spawn(process.execPath, [MAIN, 'serve', '--no-relay'], {
    env: { ...inherited, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
    })
  }
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const url = await listeningAddress(child, exited, () => output, 45_000)
  const running = () => child.exitCode === null && child.signalCode === null
  return {
    url,
    pid: child.pid ?? 0,
    output: () => output,
    async stop() {
      if (running()) child.kill('SIGTERM')
      return exited
    },
    async kill() {
      if (running()) child.kill('SIGKILL')
      await exited
    },
  }
}

async function send(apis: Client[], { method, path, body, process }: Op): Promise<Answer> {
  try {
    return await (apis[process] as Client).request(method, path, body)
  } catch (error) {
    return { status: 0, body: { message: String(error) }, headers: new Headers() }
  }
}

/** mulberry32: small, seedable, good enough to pick requests. */
function randomOf(seed: number) {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T
  return { next, int, pick }
}

/**
 * The requests of a seed, in the order they are sent. A new line goes to one of the last few orders, so
 * orders span skus and the same line is sometimes sent again; a hold or a line is followed, some
 * requests later, by its confirmation, extension or cancellation, which may land before or after the
 * hold expires.
 */
function mixOf(seed: number, skus: string[], initial: ReadonlyArray<{ ref: string; sku: string; qty: number }>) {
  const rng = randomOf(seed)
  const refs = initial.map(({ ref, sku, qty }) => ({ ref, sku, purchased: qty }))
  const later = new Map<number, Array<Omit<Op, 'process'>>>()
  const recent: Array<{ orderid: string; sku: string; qty: number }> = []
  const unknownSku = randomSku('unknown')
  let [count, orders] = [0, 0]
  const schedule = (op: Omit<Op, 'process'>, from: number, to: number) => {
    const at = count + rng.int(from, to)
    later.set(at, [...(later.get(at) ?? []), op])
  }
  const newLine = () => {
    if (rng.next() < 0.25) orders += 1
    const line = { orderid: `order-${seed}-${orders - rng.int(0, 3)}`, sku: rng.pick(skus), qty: 0 }
    line.qty = 1 + (hash(`${line.orderid} ${line.sku}`) % 4)
    recent.push(line)
    if (recent.length > 60) recent.shift()
    return line
  }
  const old = () => (recent.length > 0 ? rng.pick(recent) : newLine())
  const allocate = (body: Body) => ({ method: 'POST', path: '/allocations', body })
  const cancel = ({ orderid, sku }: { orderid: string; sku: string }) => ({
    method: 'DELETE',
    path: `/allocations/${orderid}/${sku}`,
  })

  function fresh(): Omit<Op, 'process'> {
    const r = rng.next()
    // Stock is scarce and plentiful in turns, so lines wait, and then are filled, throughout the run.
    const plenty = Math.floor(count / 250) % 2 === 1
    if (r < 0.2) {
      const line = newLine()
      if (rng.next() < 0.15) schedule(cancel(line), 1, 400)
      return allocate(line)
    }
    if (r < 0.33) {
      const line = newLine()
      if (rng.next() < 0.15) schedule(cancel(line), 1, 400)
      return allocate({ ...line, backorder: true })
    }
    if (r < 0.49) {
      const line = newLine()
      const then = rng.next()
      if (then < 0.35) schedule(allocate(line), 2, 700)
      else if (then < 0.55) schedule(allocate({ ...line, holdSeconds: rng.int(1, 3) }), 2, 700)
      else if (then < 0.75) schedule(cancel(line), 2, 700)
      return allocate({ ...line, holdSeconds: rng.int(1, 3) })
    }
    if (r < 0.55) return allocate({ ...old(), ...(rng.next() < 0.5 && { backorder: true }) })
    if (r < 0.6) return { method: 'POST', path: '/allocate', body: rng.next() < 0.5 ? old() : newLine() }
    if (r < 0.66) return cancel(old())
    if (r < 0.77) {
      const batch = rng.pick(refs)
      batch.purchased = Math.max(1, batch.purchased + (plenty ? rng.int(-4, 12) : rng.int(-10, 4)))
      const eta = rng.next() < 0.25 ? { eta: rng.pick(ETAS) } : {}
      return { method: 'PATCH', path: `/batches/${batch.ref}`, body: { qty: batch.purchased, ...eta } }
    }
    if (r < 0.8) return { method: 'PATCH', path: `/batches/${rng.pick(refs).ref}`, body: { eta: rng.pick(ETAS) } }
    if (r < 0.85) {
      const batch = {
        ref: randomBatchref('new'),
        sku: rng.pick(skus),
        qty: plenty ? rng.int(4, 16) : rng.int(1, 4),
        eta: rng.pick(ETAS),
      }
      refs.push({ ref: batch.ref, sku: batch.sku, purchased: batch.qty })
      return { method: 'POST', path: '/batches', body: batch }
    }
    if (r < 0.87) {
      const line = old()
      return allocate({ ...line, qty: line.qty + 1 })
    }
    if (r < 0.875) return allocate({ ...old(), backorder: true, holdSeconds: 2 })
    if (r < 0.885) {
      const line = { orderid: `order-${seed}-${orders}`, sku: unknownSku, qty: 1 }
      return rng.pick([allocate(line), { method: 'POST', path: '/allocate', body: line }, cancel(line)])
    }
    if (r < 0.89) return { method: 'PATCH', path: `/batches/${randomBatchref('unknown')}`, body: { qty: 3 } }
    if (r < 0.9) {
      const batch = rng.pick(initial)
      return { method: 'POST', path: '/batches', body: { ...batch, qty: batch.qty + rng.int(0, 1) } }
    }
    const sku = rng.pick(skus)
    return rng.pick([
      { method: 'GET', path: `/products/${sku}` },
      { method: 'GET', path: `/orders/${old().orderid}` },
      { method: 'GET', path: `/products/${sku}/availability?qty=${rng.int(1, 6)}` },
      { method: 'GET', path: `/products/${sku}/lines?status=backordered&limit=20` },
    ])
  }

  return (): Op => {
    count += 1
    const due = later.get(count)
    const op = due?.shift() ?? fresh()
    if (due?.length) later.set(count + 1, [...due, ...(later.get(count + 1) ?? [])])
    later.delete(count)
    return { ...op, process: rng.int(0, PROCESSES - 1) }
  }
}

function hash(text: string): number {
  let h = 2166136261
  for (const c of text) h = Math.imul(h ^ (c.codePointAt(0) ?? 0), 16777619)
  return h >>> 0
}

/** Waits for every hold to be released (they expire within 3 s of the load); answers those still held. */
async function holdsSettled(database: pg.Client): Promise<string[]> {
  const deadline = Date.now() + 20_000
  for (;;) {
    const { rows } = await database.query<{ orderid: string; sku: string; expires: string }>(
      `select orderid, sku, expires_at::text as expires from allocations
       where status = 'held' and expires_at < now() - interval '2 seconds'`,
    )
    const { rows: held } = await database.query("select 1 from allocations where status = 'held'")
    if (held.length === 0 || Date.now() > deadline) {
      return rows.map((r) => `${r.orderid} ${r.sku} is held, expired at ${r.expires}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

type State = Awaited<ReturnType<typeof stateOf>>

async function stateOf(database: pg.Client) {
  const batches = await database.query<{
    id: number
    ref: string
    sku: string
    eta: string | null
    purchased: number
    allocated: number
  }>('select id::int, ref, sku, eta::text, purchased, allocated from batches order by id')
  const lines = await database.query<{
    id: number
    orderid: string
    sku: string
    qty: number
    status: string
    batchref: string | null
    eta: string | null
    expires_at: Date | null
  }>(
    `select a.id::int, a.orderid, a.sku, a.qty, a.status, b.ref as batchref, b.eta::text, a.expires_at
     from allocations a left join batches b on b.id = a.batch_id order by a.id`,
  )
  const outbox = await database.query<{ id: number; xid: string; payload: Body & { type: string }; created: Date }>(
    'select id::int, xid::text, payload, created_at as created from outbox order by id',
  )
  return { batches: batches.rows, lines: lines.rows, outbox: outbox.rows }
}

/** Every batch's allocated qty is the sum of its allocated and held lines, and no more than it has. */
function oversold({ batches, lines }: State): string[] {
  return batches.flatMap((b) => {
    const onIt = lines.filter((l) => l.batchref === b.ref).reduce((total, l) => total + l.qty, 0)
    return onIt === b.allocated && b.allocated <= b.purchased && b.allocated >= 0
      ? []
      : [`${b.ref}: purchased ${b.purchased}, allocated ${b.allocated}, lines on it ${onIt}`]
  })
}

function fittingBackorders({ batches, lines }: State): string[] {
  return lines.flatMap((l) => {
    if (l.status !== 'backordered') return []
    const fits = batches.find((b) => b.sku === l.sku && b.purchased - b.allocated >= l.qty)
    return fits ? [`${l.orderid} ${l.sku} waits for ${l.qty}; ${fits.ref} has ${fits.purchased - fits.allocated}`] : []
  })
}

/** GET /events from the start answers the outbox, in order (once no transaction is left to finish). */
async function sameEventsOverHttp(api: Client, outbox: State['outbox']): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const read: Body[] = []
    for (let after = 0; ; ) {
      const page = await api.get(`/events?after=${after}&limit=1000`)
      if (page.status !== 200) return [`GET /events?after=${after} answered ${page.status}`]
      read.push(...page.body.events)
      if (page.body.events.length === 0) break
      after = page.body.next
    }
    const problems = outbox.flatMap((row, i) => {
      const expected = { id: row.id, ...row.payload }
      return isDeepStrictEqual(read[i], expected)
        ? []
        : [`event ${i}: ${JSON.stringify(read[i])} for ${JSON.stringify(expected)}`]
    })
    if (read.length > outbox.length) problems.push(`${read.length - outbox.length} events more than the outbox`)
    if (problems.length === 0 || attempt >= 10) return problems
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/**
 * Plays the events back, a sku at a time, checking that each follows from the state it finds: a new line
 * goes to the batch the preference gives (or waits, or is refused, only when none can take it), waiting
 * lines are filled oldest first, each on the batch it prefers, after the rest of their transaction; and
 * after each transaction (the events of one `xid`) that no batch is oversold and no waiting line fits.
 * A line's place in the queue is its first event (a hold that expired and is placed again keeps it).
 */
function replayEvents(outbox: State['outbox']) {
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

type Replay = ReturnType<typeof replayEvents>

function finalStateAgrees(replay: Replay, state: State): string[] {
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

const codeOf = ({ status, body }: Answer) => (status >= 400 ? `${status} ${body?.code}` : `${status}`)

/**
 * Each answer has a status and code the contract gives its request, and what it acknowledged is in the
 * events: the batch and expiry of a line allocated or held, a wait, a refusal, a cancellation (one event
 * per 204), a batch's change.
 */
function checkAnswers(
  sent: readonly Sent[],
  replay: Replay,
  initialRefs: ReadonlySet<string>,
  skus: readonly string[],
) {
  const failed: string[] = []
  const untold: string[] = []
  const cancelled = new Map<string, number>()
  const refused = new Map<string, [number, number]>()
  const created = new Map<string, number>()
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
  for (const { op, answer } of sent) {
    const { method, path } = op
    const body = (op.body ?? {}) as Body
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
    if (story.cancels !== (cancelled.get(key) ?? 0)) {
      untold.push(`${key}: ${story.cancels} cancellation events for ${cancelled.get(key) ?? 0} answers 204`)
    }
    const [certain, possible] = refused.get(key) ?? [0, 0]
    if (story.refusals < certain || story.refusals > possible) {
      untold.push(
        `${key}: ${story.refusals} refusals (OutOfStock without a wait) for ${certain} to ${possible} answers`,
      )
    }
  }
  for (const [ref, past] of replay.history) {
    if (past.created !== 1 || created.get(ref) !== 1)
      untold.push(`${ref}: created ${past.created} times, ${created.get(ref)} answers 201`)
  }
  return { failed, untold }
}

/** GET /orders, /allocations, /products/{sku}, /products/{sku}/lines and /batches agree with the tables. */
async function checkReads(
  api: Client,
  state: State,
  sent: readonly Sent[],
  skus: readonly string[],
): Promise<string[]> {
  const problems: string[] = []
  const view = (l: State['lines'][number]) => ({
    orderid: l.orderid,
    sku: l.sku,
    qty: l.qty,
    status: l.status,
    batchref: l.batchref,
    eta: l.eta,
    expiresAt: l.expires_at?.toISOString() ?? null,
  })
  const differs = (what: string, read: unknown, expected: unknown) => {
    if (!isDeepStrictEqual(read, expected)) {
      problems.push(`${what} read ${JSON.stringify(read)}, the tables have ${JSON.stringify(expected)}`)
    }
  }
  const orderids = [...new Set(sent.flatMap(({ op }) => (op.body?.orderid ? [String(op.body.orderid)] : [])))]
  await inParallel(orderids, 16, async (orderid) => {
    const lines = state.lines.filter((l) => l.orderid === orderid)
    const order = await api.get(`/orders/${orderid}`)
    const expected = lines.length > 0 ? { orderid, lines: lines.map(view) } : 'unknown_order'
    differs(`GET /orders/${orderid}`, order.status === 200 ? order.body : order.body.code, expected)
    const allocated = lines
      .filter((l) => l.status === 'allocated')
      .map(({ sku, batchref, qty }) => ({ sku, batchref, qty }))
    const book = await api.get(`/allocations/${orderid}?include=qty`)
    differs(
      `GET /allocations/${orderid}`,
      book.status === 200 ? book.body : book.status,
      allocated.length > 0 ? allocated : 404,
    )
  })
  for (const sku of skus) {
    const lines = state.lines.filter((l) => l.sku === sku)
    const read: unknown[] = []
    for (let after = 0; ; ) {
      const page = await api.get(`/products/${sku}/lines?limit=100${after ? `&after=${after}` : ''}`)
      read.push(...(page.body.lines ?? [page.status]))
      if (!page.body.next) break
      after = page.body.next
    }
    differs(`GET /products/${sku}/lines`, read, lines.map(view))
    const batches = state.batches
      .filter((b) => b.sku === sku)
      .sort((a, b) => (a.eta ?? '').localeCompare(b.eta ?? '') || a.id - b.id)
      .map(({ ref, eta, purchased, allocated }) => ({
        ref,
        sku,
        eta,
        purchased,
        allocated,
        available: purchased - allocated,
      }))
    const sum = (pick: (x: (typeof batches)[number]) => number) => batches.reduce((total, b) => total + pick(b), 0)
    const waiting = (status: string) => lines.filter((l) => l.status === status).reduce((total, l) => total + l.qty, 0)
    const totals = {
      purchased: sum((b) => b.purchased),
      allocated: sum((b) => b.allocated),
      available: sum((b) => b.available),
      backordered: waiting('backordered'),
      held: waiting('held'),
    }
    differs(`GET /products/${sku}`, (await api.get(`/products/${sku}`)).body, { sku, batches, totals })
    for (const batch of batches)
      differs(`GET /batches/${batch.ref}`, (await api.get(`/batches/${batch.ref}`)).body, batch)
  }
  return problems
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item)
    }),
  )
}

function summary(sent: readonly Sent[], outbox: State['outbox'], replay: Replay): string {
  const tally = (names: string[]) => {
    const counts = new Map<string, number>()
    for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1)
    return [...counts]
      .sort()
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')
  }
  const route = ({ method, path }: Op) => `${method} ${path.split('/').slice(0, 2).join('/')}`
  const lag = replay.lags.length > 0 ? `${Math.min(...replay.lags)}..${Math.max(...replay.lags)} ms` : 'none'
  return (
    `${sent.length} requests (${tally(sent.map(({ op, answer }) => `${route(op)} ${codeOf(answer)}`))}); ` +
    `${outbox.length} events (${tally(outbox.map((e) => e.payload.type))}); ${replay.filled} backorders filled; ` +
    `transactions releasing expired holds began ${lag} after the expiry`
  )
}

/** The errors the services logged, for a failure message. */
function serviceErrors(services: readonly RunningService[]): string {
  const errors = services.flatMap((s) =>
    s
      .output()
      .split('\n')
      .filter((line) => /"level":(50|60)/.test(line))
      .map((line) => {
        const { msg, url, err } = JSON.parse(line)
        return `${msg} ${url ?? ''}: ${err?.message} ${err?.detail ?? ''}`
      }),
  )
  return errors.length > 0 ? `\nservice errors:\n${errors.slice(0, 10).join('\n')}` : ''
}
