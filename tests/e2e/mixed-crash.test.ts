import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { postgresAvailable } from '../support/servers.ts'
import { checkAnswers, summary } from './mixed-answers.ts'
import { mixOf, type Sent, send, sendUntil, serviceErrors, startWithoutRelay } from './mixed-load.ts'
import { finalStateAgrees, replayEvents } from './mixed-replay.ts'
import {
  checkReads,
  fittingBackorders,
  heldInTables,
  holdsSettled,
  oversold,
  sameEventsOverHttp,
  stateOf,
} from './mixed-state.ts'
import { client, postgresMode, type RunningService, type Storage, startService } from './support.ts'

/**
 * The mix of mixed-concurrency.test.ts over two processes on one PostgreSQL database, and a third of the
 * way in, kill -9 of the process that runs the relay and releases the holds; it is started again on the
 * same database while the other serves alone, and the load goes on. A request the killed process had in
 * hand when it died has no answer: it may have taken effect or not. Every answer given, before the kill or
 * after, must hold, and once the load stops the invariants of the mix hold as if nothing had died. An
 * acknowledged line is kept: its answer is in the events and the events replay to the tables, so it can
 * be gone only by an event (a cancellation, counted against the answers 204, a release or a move).
 * MIXED_SEED replays a sequence of requests; MIXED_CRASH_SECONDS changes the load.
 */
const SEED = Number(process.env.MIXED_SEED ?? Math.floor(Math.random() * 2 ** 31))
const SECONDS = Number(process.env.MIXED_CRASH_SECONDS ?? 12)

describe('every feature mixed over two processes, the one running the relay killed and started again', () => {
  let storage: Storage | null = null
  let database: pg.Client
  const services: RunningService[] = []
  let env: Record<string, string>

  beforeAll(async () => {
    if (!(await postgresAvailable())) return
    storage = await postgresMode.prepare()
    database = new pg.Client({ connectionString: storage.env.DATABASE_URL })
    await database.connect()
    env = { ...storage.env, LOG_REQUESTS: 'false' }
    services.push(...(await Promise.all([startService(env), startWithoutRelay(env)])))
  })
  afterAll(async () => {
    // The first was killed; the rest stop cleanly.
    for (const service of services.slice(1)) expect(await service.stop(), service.output()).toBe(0)
    await database?.end()
    await storage?.drop()
  })

  it('keeps every answer it gave, delivers every event and releases every hold after the restart', {
    timeout: (SECONDS + 100) * 1000,
  }, async (ctx) => {
    if (!storage) return ctx.skip()
    const [relay, other] = services as [RunningService, RunningService]
    const urls = [relay.url, other.url]
    const skus = Array.from({ length: 4 }, () => randomSku('crash'))
    const initial = skus.flatMap((sku) => [
      { ref: randomBatchref('now'), sku, qty: 12, eta: null },
      { ref: randomBatchref('later'), sku, qty: 12, eta: '2027-02-01' },
    ])
    const sent: Sent[] = []
    for (const batch of initial) {
      const op = { method: 'POST', path: '/batches', body: batch, process: 0 }
      sent.push({ op, url: relay.url, answer: await send(relay.url, op) })
    }
    const load = sendUntil(Date.now() + SECONDS * 1000, mixOf(SEED, skus, initial, 2), () => urls, sent)
    await new Promise((resolve) => setTimeout(resolve, (SECONDS * 1000) / 3))
    // While it is down its share goes to the other, as a load balancer would send it.
    urls[0] = other.url
    await relay.kill()
    const { rows } = await database.query('select count(*)::int as n from pending_deliveries')
    const pendingAtKill = rows[0].n as number
    const restarted = await startService(env)
    services.push(restarted)
    urls[0] = restarted.url
    await load

    const unanswered = (s: Sent) => s.answer.status === 0 && s.url === relay.url
    const stillHeld = await holdsSettled(heldInTables(database))
    const undelivered = await deliveriesFinished(database)
    const state = await stateOf(database)
    const api = client(restarted.url)
    const events = await sameEventsOverHttp(api, state.outbox)
    const replay = replayEvents(state.outbox)
    const answers = checkAnswers(sent, replay, new Set(initial.map((b) => b.ref)), skus, unanswered)
    const reads = await checkReads(api, state, sent, skus)

    const lost = sent.filter(unanswered).length
    const crash = `${lost} requests unanswered by the killed process, ${pendingAtKill} events waiting for delivery just after it`
    const context = `seed ${SEED} (replay: MIXED_SEED=${SEED}); ${crash}; ${summary(sent, state.outbox, replay)}`
    console.info(`mixed load with a crash: ${context}`)
    const none = (problems: readonly string[], what: string, more = '') =>
      expect.soft(problems.slice(0, 25), `${context}\n${problems.length} ${what}${more}`).toEqual([])
    none(oversold(state), 'batches oversold, or whose allocated qty is not the sum of their lines')
    none(stillHeld, 'holds still held well past their expiry (they are released within 2 s)')
    none(fittingBackorders(state), 'backordered lines that fit a batch of their sku once things settled')
    none(undelivered, 'committed events still waiting for their delivery after the restarted relay swept')
    none(
      answers.failed,
      'answers 5xx, no answer from a process that was not killed, or a status or code the contract does not give',
      serviceErrors(services),
    )
    none(events, 'differences between GET /events and the outbox')
    none(replay.problems, 'events that do not follow from the line or batch they concern (in outbox order)')
    none(finalStateAgrees(replay, state), 'differences between the lines and batches the events tell and the tables')
    none(answers.untold, 'acknowledged answers the events do not tell, or counts of them that disagree')
    none(reads, 'differences between the reads (orders, products, lines, batches) and the tables')
  })
})

/**
 * Waits for the relay to deliver every event (one not delivered in line is due 5 s after its commit or
 * its last claim); answers those still waiting after 20 s.
 */
async function deliveriesFinished(database: pg.Client): Promise<string[]> {
  const deadline = Date.now() + 20_000
  for (;;) {
    const { rows } = await database.query<{ id: number; attempts: number; due: string }>(
      'select id::int, attempts, due_at::text as due from pending_deliveries order by id',
    )
    if (rows.length === 0 || Date.now() > deadline) {
      return rows.map((r) => `event ${r.id}: ${r.attempts} attempts, due at ${r.due}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
