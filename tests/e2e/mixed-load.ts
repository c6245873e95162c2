import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { randomBatchref, randomSku } from '../support/random-refs.ts'
import { randomOf } from '../support/seeded-random.ts'
import { listeningAddress } from '../support/service-process.ts'
import { type Answer, client, type RunningService } from './support.ts'

const ETAS = [null, '2027-01-10', '2027-02-01', '2027-03-15']
const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

export type Body = Record<string, unknown>
/** A request of the mix, and the process (an index into the services) it goes to. */
export type Op = Readonly<{ method: string; path: string; body?: Body; process: number }>
/** A request and its answer; `url` is the service it went to (an answer of status 0: no answer came). */
export type Sent = Readonly<{ op: Op; answer: Answer; url: string }>

/** `node src/main.ts serve --no-relay`, as `startService` starts the default `serve`. */
export async function startWithoutRelay(env: Record<string, string>): Promise<RunningService> {
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

/**
 * Sends the mix from `inFlight` clients at once until `deadline`, each request to the service that
 * `urls()` gives its process when it is sent, and records it with its answer in `sent`.
 */
export async function sendUntil(
  deadline: number,
  mix: () => Op,
  urls: () => readonly string[],
  sent: Sent[],
  inFlight = 12,
): Promise<void> {
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < deadline) {
        const op = mix()
        const url = urls()[op.process] as string
        sent.push({ op, url, answer: await send(url, op) })
      }
    }),
  )
}

/** The answer to `op`, or one of status 0 when none came (the connection failed or was reset). */
export async function send(url: string, { method, path, body }: Op): Promise<Answer> {
  try {
    return await client(url).request(method, path, body)
  } catch (error) {
    return { status: 0, body: { message: String(error) }, headers: new Headers() }
  }
}

/**
 * The requests of a seed, in the order they are sent, each to one of `processes`. A new line goes to one
 * of the last few orders, so orders span skus and the same line is sometimes sent again; a hold or a line
 * is followed, some requests later, by its confirmation, extension or cancellation, which may land before
 * or after the hold expires.
 */
export function mixOf(
  seed: number,
  skus: string[],
  initial: ReadonlyArray<{ ref: string; sku: string; qty: number }>,
  processes: number,
) {
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
    return { ...op, process: rng.int(0, processes - 1) }
  }
}

function hash(text: string): number {
  let h = 2166136261
  for (const c of text) h = Math.imul(h ^ (c.codePointAt(0) ?? 0), 16777619)
  return h >>> 0
}

/** The errors the services logged, for a failure message. */
export function serviceErrors(services: readonly RunningService[]): string {
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
