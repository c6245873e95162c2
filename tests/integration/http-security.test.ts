import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/adapters/logger.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { AnonymousRefused, InvalidApiKeys, parseApiKeys } from '../../src/entrypoints/http/api-keys.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { type Server, startServer } from '../../src/entrypoints/http/server.ts'
import { randomBatchref, randomOrderid, randomSku } from '../support/random-refs.ts'
import { createDataDir, postgresAvailable, postgresUrl } from '../support/servers.ts'
import { openTestDatabase, serviceOn, type TestDatabase } from './support.ts'

/*
 * The HTTP surface as an attacker meets it: who may call what, what the open routes and the dashboard's
 * files give away, what odd input and odd headers get, and what a browser on the operator's machine can
 * be made to do.
 */

const READ_NAME = 'dash-reader-3e1f'
const WRITE_NAME = 'shop-writer-7b2d'
const READ_SECRET = 'rd-9f2c5e7a1b3d4c6e8f0a'
const WRITE_SECRET = 'wr-4a6c8e0b2d4f6a8c0e2b'
/** The write secret with its last character changed. */
const NEAR_MISS = `${WRITE_SECRET.slice(0, -1)}c`

/** Routes served without a key (the README's list); every other route is the API and needs one. */
const OPEN_ROUTES = ['/', '/health', '/ready', '/metrics', '/openapi.json', '/dashboard/', '/dashboard/*']
const isOpen = (url: string) => OPEN_ROUTES.includes(url) || url === '/docs' || url.startsWith('/docs/')
const isRead = (method: string) => method === 'GET' || method === 'HEAD'

/** Signs of the service's insides in an answer: a stack frame, a source path, SQL, the database's name. */
const INTERNALS = /\n\s+at |node_modules|\/src\/|\.ts:\d|\bselect\b.+\bfrom\b|\binsert into\b|pglite|kysely|sqlstate/i

const dashboardFolder = new URL('../../src/entrypoints/dashboard/', import.meta.url)

type Route = Readonly<{ method: string; url: string }>

/** Every route the app serves, read from Fastify's own table (`printRoutes`), hidden ones included. */
function routesOf(app: App): Route[] {
  const routes: Route[] = []
  const trail: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const at = line.search(/[├└]── /)
    if (at < 0) continue
    const [, segment = '', methods = ''] = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line.slice(at + 4)) ?? []
    trail.length = at / 4
    trail.push(segment)
    const url = trail.join('')
    for (const method of methods.split(', ').filter(Boolean)) routes.push({ method, url })
  }
  return routes
}

/** A route's template with each parameter filled in. */
const concrete = (url: string) => url.replaceAll(/:\w+/g, 'x').replace('*', 'x')

/** A body each write route would accept, so that only the key stands between the request and a change. */
function bodyFor(route: Route): object | undefined {
  const batch = { ref: randomBatchref('sec'), sku: randomSku('sec'), qty: 1, eta: null }
  const line = { orderid: randomOrderid('sec'), sku: randomSku('sec'), qty: 1 }
  const bodies: Record<string, object> = {
    'POST /add_batch': batch,
    'POST /batches': batch,
    'POST /batches/bulk': { batches: [batch] },
    'POST /allocate': line,
    'POST /allocations': line,
    'PATCH /batches/:ref': { qty: 2 },
  }
  return bodies[`${route.method} ${route.url}`]
}

type RawAnswer = Readonly<{ status: number; head: string; body: string }>

/** Sends `text` as it is (no client normalises it) and reads one answer. */
function rawHttp(port: number, text: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    let data = Buffer.alloc(0)
    let done = false
    const finish = () => {
      if (done) return
      done = true
      socket.destroy()
      const end = data.indexOf('\r\n\r\n')
      const head = data.subarray(0, end < 0 ? data.length : end).toString('latin1')
      resolve({ status: Number(head.split(' ')[1]), head, body: end < 0 ? '' : data.subarray(end + 4).toString() })
    }
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk])
      const end = data.indexOf('\r\n\r\n')
      if (end < 0) return
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(data.subarray(0, end).toString('latin1'))?.[1])
      if (Number.isFinite(length) && data.length >= end + 4 + length) finish()
    })
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', (error) => (done ? undefined : reject(error)))
  })
}

type HttpAnswer = Readonly<{ status: number; headers: IncomingHttpHeaders; body: string }>

/**
 * One request over a real connection, with headers no fetch would send (a Host of another name). With
 * `headersOnly` the answer is cut after its headers, for a stream that never ends.
 */
function send(
  port: number,
  request: { method?: string; path: string; headers?: Record<string, string>; body?: string; headersOnly?: boolean },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: '127.0.0.1', port, method: request.method ?? 'GET', path: request.path, headers: request.headers },
      (response) => {
        const answer = { status: response.statusCode ?? 0, headers: response.headers }
        if (request.headersOnly) {
          response.destroy()
          return resolve({ ...answer, body: '' })
        }
        let body = ''
        response.setEncoding('utf8')
        response.on('data', (chunk) => {
          body += chunk
        })
        response.on('end', () => resolve({ ...answer, body }))
      },
    )
    outgoing.on('error', reject)
    outgoing.end(request.body)
  })
}

function expectPlainClientError(answer: { statusCode: number; body: string }): void {
  expect(answer.statusCode, answer.body).toBeGreaterThanOrEqual(400)
  expect(answer.statusCode, answer.body).toBeLessThan(500)
  expect(JSON.parse(answer.body)).toEqual(
    expect.objectContaining({ message: expect.any(String), code: expect.any(String) }),
  )
  expect(answer.body).not.toMatch(INTERNALS)
}

/** The directives of a Content-Security-Policy header, each with its sources. */
function directives(policy: string | undefined): Map<string, string[]> {
  const map = new Map<string, string[]>()
  for (const part of (policy ?? '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/)
    if (name) map.set(name.toLowerCase(), sources)
  }
  return map
}

/** Whether a page tells browsers not to show it inside another site's frame. */
function refusesFraming(headers: Record<string, unknown>): boolean {
  const ancestors = directives(String(headers['content-security-policy'] ?? '')).get('frame-ancestors')
  const xfo = String(headers['x-frame-options'] ?? '').toUpperCase()
  return (
    (ancestors !== undefined && ancestors.every((s) => s === "'none'" || s === "'self'")) ||
    xfo === 'DENY' ||
    xfo === 'SAMEORIGIN'
  )
}

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('API_KEYS, as read at start', () => {
  // Easy mistakes: a bare secret, or an entry missing its name or its scope. The service refuses them,
  // and the sentence it prints (to the terminal or the log collector) must not carry the secret.
  it.each([
    ['a bare secret', 'Zq3vW8xY1bN5mK7pL2rT9sU4', 'Zq3vW8xY1bN5mK7pL2rT9sU4'],
    ['an entry without its name', 'write:Zq3vW8xY1bN5mK7pL2rT9sU4', 'Zq3vW8xY1bN5mK7pL2rT9sU4'],
    ['an entry without its scope', 'shop:Zq3vW8xY1bN5mK7pL2rT9sU4', 'Zq3vW8xY1bN5mK7pL2rT9sU4'],
    ['a short secret', 'shop:write:Zq3vW8xY1bN5', 'Zq3vW8xY1bN5'],
  ])('refuses %s without repeating the secret', (_what, text, secret) => {
    expect(() => parseApiKeys(text)).toThrow(InvalidApiKeys)
    expect(() => parseApiKeys(text)).not.toThrow(secret.slice(0, 8))
  })

  it.each([',', ' , ', ',,,'])('refuses %j, which is set but names no key, rather than serve with none', (text) => {
    // Otherwise the API is open while the start line says "API keys required".
    expect(() => parseApiKeys(text)).toThrow(InvalidApiKeys)
  })

  it('refuses one secret given to two keys, whose scope would be whichever comes last', () => {
    const text = `dash:read:${READ_SECRET},shop:write:${READ_SECRET}`
    expect(() => parseApiKeys(text)).toThrow(InvalidApiKeys)
  })

  it.each([
    ['starts with a space, which a client cannot send after "Bearer "', ` ${READ_SECRET}`],
    ['has characters an HTTP header cannot carry', `ключ-${READ_SECRET}`],
  ])('refuses a secret that %s (it could never be presented)', (_what, secret) => {
    expect(() => parseApiKeys(`dash:read:${secret}`)).toThrow(InvalidApiKeys)
  })

  it('refuses to serve beyond the loopback interface without keys, before opening anything', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
      const dataDir = join(tmpdir(), `allocation-never-${randomBatchref()}`)
      const config = loadConfig({ HOST: host, PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'silent' })
      await expect(startServer(config, { logger: createLogger('silent') })).rejects.toThrow(AnonymousRefused)
      await expect(stat(dataDir)).rejects.toThrow()
    }
  })

  it('refuses malformed keys before opening anything', async () => {
    const dataDir = join(tmpdir(), `allocation-never-${randomBatchref()}`)
    const config = loadConfig({
      PORT: '0',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      API_KEYS: 'shop:admin:0123456789abcdef',
    })
    await expect(startServer(config, { logger: createLogger('silent') })).rejects.toThrow(InvalidApiKeys)
    await expect(stat(dataDir)).rejects.toThrow()
  })
})

describe('the HTTP API with API keys', () => {
  let test: TestDatabase | null
  let service: Service
  let app: App
  let port: number
  const logs: string[] = []
  const auth = (secret: string) => ({ authorization: `Bearer ${secret}` })

  beforeAll(async () => {
    test = await openTestDatabase('pglite')
    const sink = new Writable({
      write(chunk, _encoding, callback) {
        logs.push(String(chunk))
        callback()
      },
    })
    // Debug: the most the service ever writes about a request, the refusals of keys included.
    const logger = createLogger('debug', sink)
    service = serviceOn(test?.database as NonNullable<TestDatabase>['database'], { logger })
    app = buildApp(service, {
      logger,
      logRequests: true,
      apiKeys: parseApiKeys(`${READ_NAME}:read:${READ_SECRET},${WRITE_NAME}:write:${WRITE_SECRET}`),
    })
    await app.listen({ host: '127.0.0.1', port: 0 })
    port = (app.server.address() as { port: number }).port
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await test?.drop()
  })

  it('serves without a key only the health, metrics, documentation and dashboard routes', () => {
    const open = [
      ...new Set(
        routesOf(app)
          .filter((r) => isOpen(r.url))
          .map((r) => r.url),
      ),
    ]
    expect(open.filter((url) => !url.startsWith('/docs')).sort()).toEqual([...OPEN_ROUTES].sort())
    // Anything else found here is an API route; the next tests ask each of them for a key.
    expect(routesOf(app).filter((r) => !isOpen(r.url)).length).toBeGreaterThanOrEqual(19)
  })

  it('answers 401 on every API route to a missing, unknown, near or malformed key, the same way each time', async () => {
    const refusals = [
      {},
      auth(NEAR_MISS),
      auth(WRITE_SECRET.slice(0, -1)),
      auth(`${WRITE_SECRET}x`),
      auth(WRITE_SECRET.toUpperCase()),
      auth(`ключ-${WRITE_SECRET}`),
      auth('a'.repeat(8000)),
      auth(`Bearer ${WRITE_SECRET}`),
      { authorization: 'Bearer' },
      { authorization: 'Bearer ' },
      { authorization: `Bearer\t${WRITE_SECRET}` },
      { authorization: WRITE_SECRET },
      { authorization: `Basic ${Buffer.from(`${WRITE_NAME}:${WRITE_SECRET}`).toString('base64')}` },
      { authorization: `Token ${WRITE_SECRET}` },
    ]
    const bodies = new Set<string>()
    for (const route of routesOf(app).filter((r) => !isOpen(r.url))) {
      for (const headers of refusals) {
        const body = bodyFor(route)
        const answer = await app.inject({
          method: route.method as 'GET',
          url: concrete(route.url),
          headers,
          ...(body && { payload: body }),
        })
        const what = `${route.method} ${route.url} with ${JSON.stringify(headers).slice(0, 60)}`
        expect([what, answer.statusCode]).toEqual([what, 401])
        expect(answer.headers['www-authenticate']).toBe('Bearer')
        if (route.method !== 'HEAD') bodies.add(answer.body)
      }
    }
    // One answer for every refusal: nothing tells a near guess from a far one, or names a key.
    expect(bodies.size).toBe(1)
    const [body = ''] = bodies
    expect(JSON.parse(body).code).toBe('unauthorized')
    expect(body).not.toContain(READ_NAME)
    expect(body).not.toContain(WRITE_NAME)
  })

  it('answers 403 to a read key on every route that changes something, and changes nothing', async () => {
    const writes = routesOf(app).filter((r) => !isOpen(r.url) && !isRead(r.method))
    expect(writes.map((r) => r.method)).toEqual(expect.arrayContaining(['POST', 'PATCH', 'DELETE']))
    for (const route of writes) {
      const body = bodyFor(route)
      const answer = await app.inject({
        method: route.method as 'POST',
        url: concrete(route.url),
        headers: auth(READ_SECRET),
        ...(body && { payload: body }),
      })
      const what = `${route.method} ${route.url}`
      expect([what, answer.statusCode]).toEqual([what, 403])
      expect(answer.json().code).toBe('forbidden')
    }
    const products = await app.inject({ method: 'GET', url: '/products', headers: auth(READ_SECRET) })
    expect(products.json()).toEqual([])
  })

  it('lets the read key through on every route that only reads', async () => {
    const reads = routesOf(app).filter((r) => !isOpen(r.url) && r.method === 'GET')
    expect(reads.length).toBeGreaterThanOrEqual(10)
    for (const route of reads) {
      const url = concrete(route.url).replace(/\/moves$|\/availability$/, (tail) => `${tail}?qty=1`)
      // The stream never ends: its headers are enough.
      const status =
        route.url === '/events/stream'
          ? (await send(port, { path: url, headers: auth(READ_SECRET), headersOnly: true })).status
          : (await app.inject({ method: 'GET', url, headers: auth(READ_SECRET) })).statusCode
      expect([route.url, status === 401 || status === 403]).toEqual([route.url, false])
    }
  })

  it('takes the first of two Authorization headers: a second one never adds rights', async () => {
    const batch = JSON.stringify({ ref: randomBatchref(), sku: randomSku(), qty: 1, eta: null })
    const post = (first: string, second: string) =>
      rawHttp(
        port,
        'POST /batches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
          `Authorization: Bearer ${first}\r\nAuthorization: Bearer ${second}\r\n` +
          `Content-Length: ${Buffer.byteLength(batch)}\r\nConnection: close\r\n\r\n${batch}`,
      )
    expect((await post(NEAR_MISS, WRITE_SECRET)).status).toBe(401)
    expect((await post(READ_SECRET, WRITE_SECRET)).status).toBe(403)
  })

  it('answers an Authorization header too long for HTTP in the error shape, and keeps serving', async () => {
    const answer = await rawHttp(
      port,
      `GET /products HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`,
    )
    expect(answer.status).toBe(431)
    expect(JSON.parse(answer.body)).toEqual({ message: 'The request headers are too large', code: 'headers_too_large' })
    const after = await app.inject({ method: 'GET', url: '/products', headers: auth(READ_SECRET) })
    expect(after.statusCode).toBe(200)
  })

  it('never writes a secret, or a guess at one, in its log', async () => {
    await app.inject({ method: 'GET', url: '/products', headers: auth(NEAR_MISS) })
    await app.inject({ method: 'GET', url: '/products', headers: auth(READ_SECRET) })
    await app.inject({ method: 'POST', url: '/batches', headers: auth(READ_SECRET), payload: {} })
    await app.inject({ method: 'POST', url: '/batches', headers: auth(WRITE_SECRET), payload: { qty: 'x' } })
    const text = logs.join('')
    // The log does name the keys, which is how it says who did what.
    expect(text).toContain(WRITE_NAME)
    for (const secret of [READ_SECRET, WRITE_SECRET, NEAR_MISS]) expect(text).not.toContain(secret.slice(0, 12))
  })

  it('leaves the open routes open, and they give away no secret, key name, path or database address', async () => {
    const dataDir = tmpdir()
    for (const url of ['/health', '/ready', '/metrics', '/openapi.json', '/docs/json', '/docs/yaml', '/', '/docs']) {
      const answer = await app.inject({ method: 'GET', url })
      expect([url, answer.statusCode]).toEqual([url, 200])
      for (const secret of [READ_SECRET, WRITE_SECRET]) expect(answer.body).not.toContain(secret.slice(0, 12))
      for (const hidden of [READ_NAME, WRITE_NAME, dataDir, 'postgres://', 'redis://']) {
        expect([url, answer.body.includes(hidden)]).toEqual([url, false])
      }
    }
  })
})

describe('the dashboard’s files', () => {
  let test: TestDatabase | null
  let service: Service
  let app: App
  let port: number

  beforeAll(async () => {
    test = await openTestDatabase('pglite')
    service = serviceOn(test?.database as NonNullable<TestDatabase>['database'])
    // With keys: the page must load without one.
    app = buildApp(service, { apiKeys: parseApiKeys(`${READ_NAME}:read:${READ_SECRET}`) })
    await app.listen({ host: '127.0.0.1', port: 0 })
    port = (app.server.address() as { port: number }).port
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await test?.drop()
  })

  it('serves no file but its own, however the path is written', async () => {
    const paths = [
      '/dashboard/../package.json',
      '/dashboard/../../../package.json',
      '/dashboard/%2e%2e/package.json',
      '/dashboard/%2e%2e%2fpackage.json',
      '/dashboard/%252e%252e%252fpackage.json',
      '/dashboard/..%2f..%2fhttp%2fapp.ts',
      '/dashboard/..\\..\\http\\app.ts',
      '/dashboard/..%5c..%5chttp%5capp.ts',
      '/dashboard/app.js%00.html',
      '/dashboard/app.js%00',
      '/dashboard/%c0%ae%c0%ae/package.json',
      '/dashboard/./app.ts',
      '/dashboard//etc/passwd',
      '/dashboard/vendor/',
      '/dashboard/vendor',
      '/dashboard/vendor/../../../../package.json',
      '/dashboard/__proto__',
      '/dashboard/constructor',
      '/dashboard/app.ts',
      '/dashboard/index.html.bak',
      '/package.json',
      '/.env',
      '/docs/static/../../../../package.json',
      '/docs/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/package.json',
    ]
    for (const path of paths) {
      const answer = await rawHttp(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
      expect([path, answer.status >= 400 && answer.status < 500]).toEqual([path, true])
      expect(answer.body).not.toContain('"dependencies"')
      expect(answer.body).not.toContain('import ')
      expect(answer.body).not.toContain('root:')
    }
  })

  it('serves each file with its type, nosniff, no-cache and the page’s policy', async () => {
    const expected: Record<string, RegExp> = {
      '/': /^text\/html; charset=utf-8$/,
      '/dashboard/': /^text\/html; charset=utf-8$/,
      '/dashboard/app.js': /^text\/javascript; charset=utf-8$/,
      '/dashboard/api.js': /^text\/javascript; charset=utf-8$/,
      '/dashboard/style.css': /^text\/css; charset=utf-8$/,
      '/dashboard/vendor/preact.mjs': /^text\/javascript; charset=utf-8$/,
    }
    for (const [url, type] of Object.entries(expected)) {
      const answer = await app.inject({ method: 'GET', url })
      expect([url, answer.statusCode]).toEqual([url, 200])
      expect(answer.headers['content-type']).toMatch(type)
      expect(answer.headers['x-content-type-options']).toBe('nosniff')
      expect(answer.headers['cache-control']).toMatch(/no-cache|no-store/)
      expect(answer.headers['content-security-policy']).toBeDefined()
    }
  })

  it('runs only its own scripts: no inline script but the import map, no eval, nothing from elsewhere', async () => {
    const answer = await app.inject({ method: 'GET', url: '/' })
    const policy = directives(answer.headers['content-security-policy'] as string)
    const scripts = policy.get('script-src') ?? policy.get('default-src') ?? []
    for (const forbidden of [
      "'unsafe-inline'",
      "'unsafe-eval'",
      "'unsafe-hashes'",
      '*',
      'data:',
      'blob:',
      'http:',
      'https:',
    ]) {
      expect(scripts).not.toContain(forbidden)
    }
    expect(policy.get('default-src')).toEqual(["'self'"])
    expect(policy.get('object-src')).toEqual(["'none'"])
    expect(policy.get('base-uri')).toEqual(expect.arrayContaining([expect.stringMatching(/^'(none|self)'$/)]))
    // Every inline script of the page is allowed by its hash, so the page works under its own policy...
    const page = answer.body
    const inline = [...page.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].map(([, body]) => body ?? '')
    expect(inline).toHaveLength(1)
    for (const body of inline) {
      expect(scripts).toContain(`'sha256-${createHash('sha256').update(body).digest('base64')}'`)
    }
    // ...and it has no inline handler or javascript: URL, which the policy would block anyway.
    expect(page).not.toMatch(/\son[a-z]+\s*=/i)
    expect(page).not.toMatch(/javascript:/i)
  })

  it('refuses to be shown in another site’s frame: the page holds an API key', async () => {
    for (const url of ['/', '/dashboard/', '/dashboard/index.html']) {
      const answer = await app.inject({ method: 'GET', url })
      expect([url, refusesFraming(answer.headers)]).toEqual([url, true])
    }
  })

  it('refuses to frame the API documentation too: it is the same origin, and takes a key in its Authorize form', async () => {
    for (const url of ['/docs', '/docs/', '/docs/static/index.html']) {
      const answer = await app.inject({ method: 'GET', url })
      if (answer.statusCode >= 300 && answer.statusCode < 400) continue
      expect([url, refusesFraming(answer.headers)]).toEqual([url, true])
    }
  })

  it('serves the browser code as it is in the repository, inserting API text only as text', async () => {
    const sinks =
      /\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|dangerouslySetInnerHTML|document\.write|\beval\s*\(|new Function\s*\(|srcdoc|createContextualFragment|parseFromString/
    const names = (await readdir(dashboardFolder)).filter((name) => name.endsWith('.js'))
    expect(names).toContain('api.js')
    for (const name of names) {
      const source = await readFile(new URL(name, dashboardFolder), 'utf8')
      const served = await app.inject({ method: 'GET', url: `/dashboard/${name}` })
      expect([name, served.statusCode]).toEqual([name, 200])
      expect(served.body).toBe(source)
      expect([name, sinks.exec(source)?.[0] ?? null]).toEqual([name, null])
      // The key is kept for the tab only: never in localStorage or a cookie, which outlive it.
      expect([name, /localStorage|document\.cookie|indexedDB/.exec(source)?.[0] ?? null]).toEqual([name, null])
    }
    const api = await readFile(new URL('api.js', dashboardFolder), 'utf8')
    expect(api).toContain('sessionStorage')
    expect(api).toMatch(/authorization: `Bearer \$\{key\}`/)
  })
})

describe('the HTTP API served on the loopback interface without keys', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let server: Server
  let port: number

  beforeAll(async () => {
    place = await createDataDir()
    const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', DATA_DIR: place.dir, LOG_LEVEL: 'silent' })
    server = await startServer(config, { logger: createLogger('silent'), relay: false, logRequests: false })
    port = Number(new URL(server.url).port)
  })
  afterAll(async () => {
    await server?.close()
    await place?.drop()
  })

  const app = () => server.app

  it('refuses a request that names another host, so that a web page rebinding its name to 127.0.0.1 cannot use it', async () => {
    // DNS rebinding: a page from rebind.attacker.example resolves its own name to 127.0.0.1 and then
    // calls the service as its own origin; the browser sends that name as Host.
    const sku = randomSku('rebind')
    const batch = JSON.stringify({ ref: randomBatchref('rebind'), sku, qty: 7, eta: null })
    const host = 'rebind.attacker.example:5005'
    const write = await send(port, {
      method: 'POST',
      path: '/batches',
      headers: { host, origin: `http://${host}`, 'content-type': 'application/json' },
      body: batch,
    })
    expect(write.status).toBeGreaterThanOrEqual(400)
    expect(write.status).toBeLessThan(500)
    const read = await send(port, { path: '/products', headers: { host } })
    expect(read.status).toBeGreaterThanOrEqual(400)
    const stored = await send(port, { path: `/products/${encodeURIComponent(sku)}` })
    expect(stored.status).toBe(404)
  })

  it('serves requests that name the loopback interface', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost']) {
      const answer = await send(port, { path: '/products', headers: { host } })
      expect([host, answer.status]).toEqual([host, 200])
    }
  })

  it('lets no other origin read or write through a browser: no CORS grant, and forms are refused', async () => {
    const preflight = await app().inject({
      method: 'OPTIONS',
      url: '/batches',
      headers: {
        origin: 'https://attacker.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    })
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined()
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined()
    const read = await app().inject({
      method: 'GET',
      url: '/products',
      headers: { origin: 'https://attacker.example' },
    })
    expect(read.headers['access-control-allow-origin']).toBeUndefined()
    // The content types a page may POST across origins without asking first are refused.
    const batch = JSON.stringify({ ref: randomBatchref('csrf'), sku: randomSku('csrf'), qty: 1, eta: null })
    for (const type of [
      'text/plain',
      'text/plain; charset=application/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const answer = await app().inject({
        method: 'POST',
        url: '/batches',
        headers: { 'content-type': type, origin: 'https://attacker.example' },
        payload: batch,
      })
      expect([type, answer.statusCode]).toEqual([type, 415])
    }
  })

  it('bounds how long a request may take to arrive, so a client dribbling a body cannot hold a connection forever', () => {
    // Fastify's default is 0, no limit: a client that declares a body and sends a byte a second keeps
    // its connection (and a file descriptor) for as long as it likes, a key or not (the 401 is sent,
    // then the body is still read). Many such clients exhaust the process's connections.
    expect(app().server.requestTimeout).toBeGreaterThan(0)
  })

  it('answers a HEAD of the event stream with its headers, and ends', async () => {
    const answer = await app().inject({ method: 'HEAD', url: '/events/stream' })
    expect(answer.statusCode).toBe(200)
    expect(answer.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    expect(answer.body).toBe('')
  })

  it('answers x-request-id on the event stream too', async () => {
    const answer = await send(port, {
      path: '/events/stream',
      headers: { 'x-request-id': 'stream-request-1' },
      headersOnly: true,
    })
    expect(answer.status).toBe(200)
    expect(answer.headers['x-request-id']).toBe('stream-request-1')
  })

  it('refuses a Last-Event-ID beyond the largest exact event id, as it refuses such an ?after=', async () => {
    const after = await app().inject({ method: 'GET', url: '/events/stream?after=9007199254740992' })
    expect(after.statusCode).toBe(400)
    // Number('9999999999999999') is 10000000000000000: the stream would wait for an event that never comes.
    const answer = await send(port, {
      path: '/events/stream',
      headers: { 'last-event-id': '9999999999999999' },
      headersOnly: true,
    })
    expect(answer.status).toBe(400)
  })

  it('refuses a Last-Event-ID that is not one event id, before the stream starts', async () => {
    for (const id of ['1\nevent: Allocated\ndata: {}', '1\r\n\r\nid: 2', '1, 2', '-1', '1e3', ' 1', 'abc', '']) {
      const answer = await app().inject({ method: 'GET', url: '/events/stream', headers: { 'last-event-id': id } })
      expect([id, answer.statusCode]).toEqual([id, 400])
      expectPlainClientError(answer)
    }
    for (const query of ['after=1&after=2', 'after[]=1', 'after=1.5', 'after=-1', 'after=%0a1', '__proto__=1']) {
      const answer = await app().inject({ method: 'GET', url: `/events/stream?${query}` })
      expect([query, answer.statusCode]).toEqual([query, 400])
      expectPlainClientError(answer)
    }
  })

  it('refuses JSON keys that would reach an object’s prototype, and leaves Object.prototype alone', async () => {
    const sku = randomSku('proto')
    const base = `"ref":"${randomBatchref('proto')}","sku":"${sku}","qty":1,"eta":null`
    for (const payload of [
      `{${base},"__proto__":{"polluted":true}}`,
      `{${base},"constructor":{"prototype":{"polluted":true}}}`,
      `{"__proto__":{${base}}}`,
      `{"batches":[{${base},"__proto__":{"polluted":true}}]}`,
    ]) {
      const url = payload.startsWith('{"batches"') ? '/batches/bulk' : '/batches'
      const answer = await app().inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json' },
        payload,
      })
      expect([payload, answer.statusCode]).toEqual([payload, 400])
      expectPlainClientError(answer)
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect((await app().inject({ method: 'GET', url: `/products/${sku}` })).statusCode).toBe(404)
  })

  it('refuses deeply nested JSON with a 400, and keeps serving', async () => {
    for (const payload of [
      `${'['.repeat(200_000)}${']'.repeat(200_000)}`,
      `{"ref":"x","sku":"y","qty":1,"eta":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`,
    ]) {
      const answer = await app().inject({
        method: 'POST',
        url: '/batches',
        headers: { 'content-type': 'application/json' },
        payload,
      })
      expectPlainClientError(answer)
    }
    expect((await app().inject({ method: 'GET', url: '/health' })).statusCode).toBe(200)
  })

  it('refuses numbers that are not quantities, however JSON writes them', async () => {
    for (const qty of [
      '1e308',
      '1e309',
      '-0',
      '0',
      '-1',
      '1.5',
      '2147483648',
      '"1"',
      'true',
      'null',
      '[1]',
      '{"$gt":0}',
    ]) {
      const payload = `{"ref":"${randomBatchref('n')}","sku":"${randomSku('n')}","qty":${qty},"eta":null}`
      const answer = await app().inject({
        method: 'POST',
        url: '/batches',
        headers: { 'content-type': 'application/json' },
        payload,
      })
      expect([qty, answer.statusCode]).toEqual([qty, 400])
      expectPlainClientError(answer)
    }
  })

  it('answers a body over the limit, or one declared so, with 413 before reading it', async () => {
    const declared = await app().inject({
      method: 'POST',
      url: '/batches',
      headers: { 'content-type': 'application/json', 'content-length': String(2 ** 40) },
      payload: '{}',
    })
    expect(declared.statusCode).toBe(413)
    expectPlainClientError(declared)
    const raw = await rawHttp(
      port,
      'POST /batches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        'Content-Length: 99999999999999999999999\r\n\r\n{',
    )
    expect(raw.status).toBe(400)
  })

  it('answers a body of another type with 415, and a body on a GET with no change of meaning', async () => {
    for (const type of ['application/xml', 'text/html', 'application/json-patch+json', 'text/json']) {
      const answer = await app().inject({
        method: 'POST',
        url: '/allocations',
        headers: { 'content-type': type },
        payload: '{"orderid":"o","sku":"s","qty":1}',
      })
      expect([type, answer.statusCode]).toEqual([type, 415])
      expectPlainClientError(answer)
    }
    const get = await app().inject({
      method: 'GET',
      url: '/products',
      headers: { 'content-type': 'application/json' },
      payload: '{"sku": {"$ne": null}',
    })
    expect(get.statusCode).toBeLessThan(500)
  })

  it('reads ids in paths as ids: dot segments, encoded slashes and long ids are data, not paths', async () => {
    const cases: Array<[string, number]> = [
      ['/batches/..', 404],
      ['/batches/%2e%2e', 404],
      ['/batches/a%2F..%2F..%2Fpackage.json', 404],
      ['/products/..%2f..%2fetc%2fpasswd', 404],
      [`/batches/${'a'.repeat(255)}`, 404],
      [`/batches/${'a'.repeat(256)}`, 400],
      [`/batches/${'%F0%9F%98%80'.repeat(256)}`, 400],
      ['/batches/%00', 400],
      ['/batches/a%0d%0aSet-Cookie:%20x=1', 400],
      ['/batches/%ZZ', 400],
      ['/batches/%ED%A0%80', 400],
      ['/allocations/%3Cscript%3Ealert(1)%3C%2Fscript%3E', 404],
    ]
    for (const [path, status] of cases) {
      const answer = await rawHttp(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
      expect([path.slice(0, 60), answer.status]).toEqual([path.slice(0, 60), status])
      expect(answer.head).not.toMatch(/set-cookie/i)
      expectPlainClientError({ statusCode: answer.status, body: answer.body })
    }
  })

  it('refuses repeated, nested or unknown query parameters', async () => {
    const sku = randomSku('query')
    for (const query of [
      'qty=1&qty=2',
      'qty[]=1',
      'qty[a]=1',
      'qty=1&__proto__=1',
      'qty=1&constructor=x',
      'qty=0x10',
    ]) {
      const answer = await app().inject({ method: 'GET', url: `/products/${sku}/availability?${query}` })
      expect([query, answer.statusCode]).toEqual([query, 400])
      expectPlainClientError(answer)
    }
  })

  it('echoes only a plain x-request-id; anything else gets an id of its own', async () => {
    for (const given of ['a'.repeat(10_000), 'a'.repeat(201), 'ид-1', 'a b', '']) {
      const answer = await app().inject({ method: 'GET', url: '/health', headers: { 'x-request-id': given } })
      expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    }
    // A bare CR or LF in a header never reaches the service: Node refuses the request, answered in our shape.
    const split = await rawHttp(
      port,
      'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: a\rInjected-Header: 1\r\nConnection: close\r\n\r\n',
    )
    expect(split.status).toBe(400)
    expect(split.head).not.toMatch(/injected-header/i)
    expect(JSON.parse(split.body).code).toBe('bad_request')
  })

  it('names no internals in the answer to a route that does not exist', async () => {
    for (const url of ['/<script>alert(1)</script>', '/products/x/y/z', '/admin', '/.git/config', '/debug/pprof']) {
      const answer = await app().inject({ method: 'GET', url })
      expect([url, answer.statusCode]).toEqual([url, 404])
      expectPlainClientError(answer)
      expect(answer.headers['content-type']).toMatch(/^application\/json/)
    }
  })
})

describe('GET /ready while the database is away', () => {
  // The route is open to anyone who reaches the service: it says what is wrong, not where the database is
  // or which role the service uses (as the Redis check already does: "Redis refused the connection").
  const readyWith = async (databaseUrl: string) => {
    const service = bootstrap(
      loadConfig({ LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, DATABASE_CONNECT_TIMEOUT_MS: '500' }),
    )
    const app = buildApp(service)
    try {
      const answer = await app.inject({ method: 'GET', url: '/ready' })
      expect(answer.statusCode).toBe(503)
      return answer.body
    } finally {
      await app.close()
      await service.close()
    }
  }

  it('does not say the address of a database that refuses connections', async () => {
    const port = await closedPort()
    const body = await readyWith(`postgres://inventory_owner:hunter2-5f1c@127.0.0.1:${port}/inventory`)
    for (const hidden of ['hunter2-5f1c', 'inventory_owner', `:${port}`]) {
      expect([hidden, body.includes(hidden)]).toEqual([hidden, false])
    }
  })

  it('does not name the database role it was refused', async (ctx) => {
    if (!(await postgresAvailable())) return ctx.skip()
    const url = new URL(postgresUrl)
    url.username = 'no_such_role_5f1c'
    url.password = 'hunter2-5f1c'
    const body = await readyWith(url.toString())
    for (const hidden of ['hunter2-5f1c', 'no_such_role_5f1c']) {
      expect([hidden, body.includes(hidden)]).toEqual([hidden, false])
    }
  })
})
