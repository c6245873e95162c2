const KEY = 'allocation.apiKey'

/** An answer of the API in its error shape: `message` is the API's sentence, `field` the input it names. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `The service answered ${status}`)
    this.name = 'ApiError'
    this.status = status
    this.code = body?.code ?? null
    this.field = body?.details?.[0]?.field ?? fieldOfCode[this.code] ?? null
    /** What is wrong with the field (`must be at least 1`), for a sentence in the form's own words. */
    this.problem = body?.details?.[0]?.message ?? null
  }
}

/** Errors of the domain name no field themselves: the input each is about. */
const fieldOfCode = {
  out_of_stock: 'qty',
  line_conflict: 'qty',
  unknown_product: 'sku',
  unknown_batch: 'ref',
  batch_conflict: 'ref',
  unknown_order: 'orderid',
  not_allocated: 'orderid',
}

const UNREACHABLE =
  'The service cannot be reached: check that it is running and that the network is up, then try again.'

let ask = null
let asking = null
let needed = false
const listeners = new Set()

/**
 * Sets how the page asks for an API key: `(why) => Promise<string | null>`, `why` being `missing`,
 * `refused` (401 to a key), `forbidden` (403: the key may only read) or `change` (the operator asked).
 */
export function whenKeyNeeded(prompt) {
  ask = prompt
}

/** Calls `listener()` whenever the tab's key is given, changed or found missing; answers how to stop. */
export function onKeyChange(listener) {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

/** The key this tab was given, or null. */
export const currentKey = () => sessionStorage.getItem(KEY)

/** True once the service asked this tab for a key (or the tab holds one). */
export const keyNeeded = () => needed || currentKey() !== null

/** The `Authorization` header for `key` (kept for this browser tab only), none without one. */
export const authorization = (key) => (key ? { authorization: `Bearer ${key}` } : {})

function keep(key) {
  if (key) sessionStorage.setItem(KEY, key)
  else sessionStorage.removeItem(KEY)
  for (const listener of listeners) listener()
}

/** Asks for a key, once for every request that needs one at the same time; keeps the key given. */
async function prompt(why) {
  if (!ask) return null
  asking ??= ask(why).finally(() => {
    asking = null
  })
  const key = await asking
  if (key) keep(key)
  return key || null
}

/** Lets the operator give another key (a write key for a read one), whenever they like. */
export const changeKey = () => prompt('change')

/**
 * After a 401 or 403 to a request sent with `sent`: asks for a key, once for every request refused at the
 * same time. True when there is a key to try (a new one, or one given since `sent` went out). After a 403
 * the key stays: it may still read.
 */
export async function needKey(sent, status = 401) {
  const now = currentKey()
  if (now !== null && now !== sent) return true
  if (status === 401) {
    needed = true
    keep(null)
  }
  const why = status === 403 ? 'forbidden' : sent !== null ? 'refused' : 'missing'
  return Boolean(await prompt(why))
}

/** Calls the API; answers its JSON (null for 204) or throws an `ApiError` with the API's sentence. */
export async function api(method, path, body) {
  for (;;) {
    const key = currentKey()
    const headers = { accept: 'application/json', ...authorization(key) }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }
    const response = await fetch(path, init).catch(() => {
      throw new ApiError(0, { message: UNREACHABLE })
    })
    if ((response.status === 401 || response.status === 403) && (await needKey(key, response.status))) continue
    if (response.status === 204) return null
    const answer = await response.json().catch(() => null)
    if (!response.ok) throw new ApiError(response.status, answer)
    return answer
  }
}

export const path = (strings, ...values) =>
  strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '')
