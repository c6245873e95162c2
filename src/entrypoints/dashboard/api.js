const KEY = 'allocation.apiKey'

/** An answer of the API in its error shape: `message` is the API's sentence, `field` the input it names. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `The service answered ${status}`)
    this.name = 'ApiError'
    this.status = status
    this.code = body?.code ?? null
    this.field = body?.details?.[0]?.field ?? fieldOfCode[this.code] ?? null
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

let ask = null
let asking = null

/** Sets how the page asks for an API key: `(refused) => Promise<string | null>`. */
export function whenKeyNeeded(prompt) {
  ask = prompt
}

/** The key this tab was given, or null. */
export const currentKey = () => sessionStorage.getItem(KEY)

/** The `Authorization` header for `key` (kept for this browser tab only), none without one. */
export const authorization = (key) => (key ? { authorization: `Bearer ${key}` } : {})

/**
 * After a 401 to a request sent with `sent`: asks for a key, once for every request refused at the same
 * time. True when there is a key to try (a new one, or one given since `sent` went out).
 */
export async function needKey(sent) {
  const now = currentKey()
  if (now !== null && now !== sent) return true
  sessionStorage.removeItem(KEY)
  if (!ask) return false
  asking ??= ask(sent !== null).finally(() => {
    asking = null
  })
  const key = await asking
  if (key) sessionStorage.setItem(KEY, key)
  return Boolean(key)
}

/** Calls the API; answers its JSON (null for 204) or throws an `ApiError` with the API's sentence. */
export async function api(method, path, body) {
  for (;;) {
    const key = currentKey()
    const headers = { accept: 'application/json', ...authorization(key) }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    if (response.status === 401 && (await needKey(key))) continue
    if (response.status === 204) return null
    const answer = await response.json().catch(() => null)
    if (!response.ok) throw new ApiError(response.status, answer)
    return answer
  }
}

export const path = (strings, ...values) =>
  strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '')
