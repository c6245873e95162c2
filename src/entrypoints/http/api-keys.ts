import { createHash, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import bearerAuth from '@fastify/bearer-auth'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

export type ApiKey = Readonly<{ name: string; scope: 'read' | 'write'; digest: Buffer }>

declare module 'fastify' {
  interface FastifyRequest {
    /** The key the request came with; `null` when the service runs without keys. */
    apiKey: ApiKey | null
  }
}

const MIN_SECRET_LENGTH = 16

/** `API_KEYS` could not be read; the message names the entry and what is wrong with it. */
export class InvalidApiKeys extends Error {
  override readonly name = 'InvalidApiKeys'
}

/** The service would be open to anyone who reaches it; it says so instead of starting. */
export class AnonymousRefused extends Error {
  override readonly name = 'AnonymousRefused'
}

/**
 * `name:scope:secret` entries separated by commas; scope `read` or `write`, a secret of at least 16
 * visible ASCII characters (it may contain colons). Only a digest of each secret is kept. A message about
 * a malformed entry never repeats what may be its secret: not the entry, nor a part of one that lacks a
 * part (a bare secret, or one after its scope only, would otherwise be printed as a name or a scope).
 */
export function parseApiKeys(text: string): ApiKey[] {
  if (text.trim() === '') return []
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
  if (entries.length === 0) {
    throw new InvalidApiKeys('API_KEYS is set but names no key; give name:scope:secret entries, or leave it unset')
  }
  const secrets = new Map<string, string>()
  const keys = entries.map((entry, i) => {
    const [name = '', scope = '', ...rest] = entry.split(':')
    const secret = rest.join(':')
    const whole = rest.length > 0
    const which = `API_KEYS entry ${i + 1}${whole && /^[\w.-]+$/.test(name) ? ` (${name})` : ''}`
    if (!whole) throw new InvalidApiKeys(`${which} is not name:scope:secret`)
    if (!/^[\w.-]+$/.test(name)) throw new InvalidApiKeys(`${which} needs a name of letters, digits, _ . or -`)
    if (scope !== 'read' && scope !== 'write') throw new InvalidApiKeys(`${which} needs the scope read or write`)
    // What a client can send after "Bearer ": a header carries bytes, and the scheme's space is trimmed.
    if (!/^[\x21-\x7e]*$/.test(secret)) {
      throw new InvalidApiKeys(`${which} has a secret with a space or a character other than visible ASCII`)
    }
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new InvalidApiKeys(`${which} has a secret shorter than ${MIN_SECRET_LENGTH} characters`)
    }
    const other = secrets.get(secret)
    if (other !== undefined) throw new InvalidApiKeys(`API_KEYS gives the keys ${other} and ${name} the same secret`)
    secrets.set(secret, name)
    return { name, scope, digest: digestOf(secret) } as const
  })
  const names = new Set<string>()
  for (const { name } of keys) {
    if (names.has(name)) throw new InvalidApiKeys(`API_KEYS names the key ${name} twice`)
    names.add(name)
  }
  return keys
}

/**
 * The key whose secret is `secret`. Digests of equal length are compared in constant time, and every key
 * is compared, so the time taken says nothing about how close a guess was or which key it matched.
 */
export function findKey(keys: readonly ApiKey[], secret: string): ApiKey | undefined {
  const digest = digestOf(secret)
  let found: ApiKey | undefined
  for (const key of keys) {
    if (timingSafeEqual(key.digest, digest)) found = key
  }
  return found
}

/** Refuses to serve without keys where other machines can reach the service, unless told to. */
export function checkExposure(host: string, keys: readonly ApiKey[], allowAnonymous: boolean): void {
  if (keys.length > 0 || allowAnonymous || isLoopback(host)) return
  throw new AnonymousRefused(
    `Refusing to serve on ${host} without API_KEYS: anyone who reaches it could change stock; set API_KEYS, ` +
      'listen on 127.0.0.1, or set ALLOW_ANONYMOUS=true to serve without authentication.',
  )
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true
  return isIP(host) === 4 && host.startsWith('127.')
}

/**
 * Requires a key on every route registered in `app` (and its children): 401 `unauthorized` without one
 * that matches, 403 `forbidden` when a `read` key asks to change something.
 */
export async function requireApiKeys(app: FastifyInstance, keys: readonly ApiKey[]): Promise<void> {
  await app.register(bearerAuth, {
    keys: [],
    addHook: false,
    // The scheme's name is case-insensitive (RFC 9110, 11.1): `bearer <secret>` is a key too.
    specCompliance: 'rfc6749',
    verifyErrorLogLevel: 'debug',
    auth: (secret: string, request: FastifyRequest) => {
      request.apiKey = findKey(keys, secret) ?? null
      return request.apiKey !== null
    },
  })
  app.addHook('onRequest', (request, reply, done) => {
    app.verifyBearerAuth?.(request, reply, (error) => {
      if (error) return void unauthorized(reply)
      if (request.apiKey?.scope === 'read' && !isRead(request.method)) {
        return void reply.code(403).send({
          message: `The API key ${request.apiKey.name} may only read; this ${request.method} needs a write key`,
          code: 'forbidden',
        })
      }
      done()
    })
  })
}

/**
 * Without keys on the loopback interface, answers only requests addressed to it: a web page that points
 * its own name at 127.0.0.1 (DNS rebinding) would otherwise reach the API as its own site, through the
 * browser of someone on this machine. Its requests name its host; a request that names none is no browser's.
 */
export function requireLoopbackHost(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    const host = request.headers.host
    if (host === undefined || isLoopback(hostnameOf(host))) return done()
    void reply.code(403).send({
      message: 'Without API_KEYS the service answers only requests addressed to localhost or 127.0.0.1',
      code: 'forbidden',
    })
  })
}

/** The name or address of a Host header, without its port: `[::1]:5005` is `[::1]`. */
function hostnameOf(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  return host.split(':')[0] ?? ''
}

function unauthorized(reply: FastifyReply): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', 'Bearer')
    .send({ message: 'Send a valid API key as "Authorization: Bearer <secret>"', code: 'unauthorized' })
}

function isRead(method: string): boolean {
  return method === 'GET' || method === 'HEAD'
}

function digestOf(secret: string): Buffer {
  return createHash('sha256').update(secret).digest()
}
