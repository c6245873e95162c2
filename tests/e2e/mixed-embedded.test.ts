import { PGlite } from '@electric-sql/pglite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { checkAnswers, summary } from './mixed-answers.ts'
import { mixOf, type Sent, send, sendUntil, serviceErrors } from './mixed-load.ts'
import { finalStateAgrees, replayEvents } from './mixed-replay.ts'
import {
  eventsDiffer,
  eventsOverHttp,
  fittingBackorders,
  heldOverHttp,
  holdsSettled,
  oversold,
  readsDiffer,
  readsOf,
  stateOf,
} from './mixed-state.ts'
import { client, pgliteMode, type RunningService, type Storage, startService } from './support.ts'

/**
 * The mix of mixed-concurrency.test.ts from many clients at once against one process on embedded PGlite,
 * whose single connection takes the transactions in turn. Once the load stops and the holds are released,
 * the events and the reads are taken through it, and its tables by opening its data directory once it
 * has stopped. MIXED_SEED replays a sequence of requests; MIXED_EMBEDDED_SECONDS changes the load.
 */
const SEED = Number(process.env.MIXED_SEED ?? Math.floor(Math.random() * 2 ** 31))
const SECONDS = Number(process.env.MIXED_EMBEDDED_SECONDS ?? 10)

describe('every feature mixed, from many clients, on the embedded database', () => {
  let storage: Storage
  let service: RunningService
  let stopped = false

  beforeAll(async () => {
    storage = await pgliteMode.prepare()
    service = await startService({ ...storage.env, LOG_REQUESTS: 'false' })
  })
  afterAll(async () => {
    if (service && !stopped) expect(await service.stop(), service.output()).toBe(0)
    await storage?.drop()
  })

  it('never oversells, never loses an accepted line, and its events tell what happened', {
    timeout: (SECONDS + 100) * 1000,
  }, async () => {
    const skus = Array.from({ length: 4 }, () => randomSku('embedded'))
    const initial = skus.flatMap((sku) => [
      { ref: randomBatchref('now'), sku, qty: 12, eta: null },
      { ref: randomBatchref('later'), sku, qty: 12, eta: '2027-02-01' },
    ])
    const sent: Sent[] = []
    for (const batch of initial) {
      const op = { method: 'POST', path: '/batches', body: batch, process: 0 }
      sent.push({ op, url: service.url, answer: await send(service.url, op) })
    }
    await sendUntil(Date.now() + SECONDS * 1000, mixOf(SEED, skus, initial, 1), () => [service.url], sent)
    const api = client(service.url)
    const stillHeld = await holdsSettled(heldOverHttp(api, skus))
    // Nothing is left to change: what the service answers now is what it has once stopped.
    const read = { events: await eventsOverHttp(api), reads: await readsOf(api, sent, skus) }
    stopped = true
    expect(await service.stop(), service.output()).toBe(0)

    const pglite = await PGlite.create(storage.env.DATA_DIR)
    const state = await stateOf(pglite)
    const { rows: undelivered } = await pglite.query<{ id: number }>('select id::int from pending_deliveries')
    await pglite.close()
    const replay = replayEvents(state.outbox)
    const answers = checkAnswers(sent, replay, new Set(initial.map((b) => b.ref)), skus)

    const context = `seed ${SEED} (replay: MIXED_SEED=${SEED}); ${summary(sent, state.outbox, replay)}`
    console.info(`mixed load on PGlite: ${context}`)
    const none = (problems: readonly string[], what: string, more = '') =>
      expect.soft(problems.slice(0, 25), `${context}\n${problems.length} ${what}${more}`).toEqual([])
    none(oversold(state), 'batches oversold, or whose allocated qty is not the sum of their lines')
    none(stillHeld, 'holds still held well past their expiry (they are released within 2 s)')
    none(fittingBackorders(state), 'backordered lines that fit a batch of their sku once things settled')
    none(
      undelivered.map((r) => `event ${r.id}`),
      'committed events not delivered when the service stopped cleanly',
    )
    none(
      answers.failed,
      'answers 5xx, or a status or code the contract does not give that request',
      serviceErrors([service]),
    )
    none(eventsDiffer(read.events, state.outbox), 'differences between GET /events and the outbox')
    none(replay.problems, 'events that do not follow from the line or batch they concern (in outbox order)')
    none(finalStateAgrees(replay, state), 'differences between the lines and batches the events tell and the tables')
    none(answers.untold, 'acknowledged answers the events do not tell, or counts of them that disagree')
    none(
      readsDiffer(read.reads, state, sent, skus),
      'differences between the reads (orders, products, lines, batches) and the tables',
    )
  })
})
