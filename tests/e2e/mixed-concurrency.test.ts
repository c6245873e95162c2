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
 * A seeded random mix of every write (allocations plain, waiting and held; holds confirmed, extended and
 * cancelled; batches shrunk, raised, delayed and added; the book's /allocate) from many clients at once,
 * over several processes on one PostgreSQL database, with holds expiring meanwhile. Once the load stops
 * and the holds are released, the tables, the reads and the events must agree that nothing was oversold
 * and no accepted line was lost. MIXED_SEED replays a sequence of requests (their interleaving is up to
 * timing); MIXED_SECONDS and MIXED_PROCESSES change the load.
 */
const SEED = Number(process.env.MIXED_SEED ?? Math.floor(Math.random() * 2 ** 31))
const SECONDS = Number(process.env.MIXED_SECONDS ?? 12)
const PROCESSES = Number(process.env.MIXED_PROCESSES ?? 2)

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
    const urls = services.map((s) => s.url)
    const skus = Array.from({ length: 4 }, () => randomSku('mixed'))
    const initial = skus.flatMap((sku) => [
      { ref: randomBatchref('now'), sku, qty: 12, eta: null },
      { ref: randomBatchref('later'), sku, qty: 12, eta: '2027-02-01' },
    ])
    const sent: Sent[] = []
    for (const batch of initial) {
      const op = { method: 'POST', path: '/batches', body: batch, process: 0 }
      const url = urls[0] as string
      sent.push({ op, url, answer: await send(url, op) })
    }
    await sendUntil(Date.now() + SECONDS * 1000, mixOf(SEED, skus, initial, PROCESSES), () => urls, sent)
    const stillHeld = await holdsSettled(heldInTables(database))
    const state = await stateOf(database)
    const api = client(urls[0] as string)
    const events = await sameEventsOverHttp(api, state.outbox)
    const replay = replayEvents(state.outbox)
    const answers = checkAnswers(sent, replay, new Set(initial.map((b) => b.ref)), skus)
    const reads = await checkReads(api, state, sent, skus)

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
