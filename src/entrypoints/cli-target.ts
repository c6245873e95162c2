import type { Service } from '../bootstrap.ts'
import type { CreateBatch } from '../domain/commands.ts'
import { ConflictingBatch, type LineResult } from '../service-layer/handlers.ts'
import type { LineView, ProductView } from '../service-layer/ports.ts'
import { InvalidInput, NotFound } from './cli-input.ts'

export type NewBatchFields = Omit<CreateBatch, 'type'>
export type NewLineFields = Readonly<{
  orderid: string
  sku: string
  qty: number
  backorder: boolean
  holdSeconds: number | null
}>

/** What the command line asks of the service: of its database directly, or of a running one over HTTP. */
export interface CliTarget {
  addBatch(batch: NewBatchFields): Promise<{ created: boolean }>
  /** All or none; a conflicting batch is a `ConflictingBatch` naming its index. */
  addBatches(batches: readonly NewBatchFields[]): Promise<{ added: number; present: number }>
  allocate(line: NewLineFields): Promise<LineResult>
  changeEta(ref: string, eta: string | null): Promise<void>
  /** Every line of the order; none when it has none. */
  order(orderid: string): Promise<LineView[]>
  product(sku: string): Promise<ProductView | undefined>
}

export function databaseTarget({ bus, views }: Service): CliTarget {
  return {
    addBatch: (batch) => bus.handle({ type: 'CreateBatch', ...batch }),
    addBatches: (batches) => bus.handle({ type: 'CreateBatches', batches }),
    allocate: (line) => bus.handle({ type: 'Allocate', ...line }),
    changeEta: async (ref, eta) => {
      await bus.handle({ type: 'ChangeBatchEta', ref, eta })
    },
    order: (orderid) => views.order(orderid),
    product: (sku) => views.product(sku),
  }
}

/** A running service refused a request; the message is its own sentence. */
export class ServiceRefused extends Error {
  override readonly name = 'ServiceRefused'
}

/** `route`: the method and path asked, to name in a refusal. */
type Answer = Readonly<{ status: number; body: any; route: string }>

/** The codes with which the service says it does not know a batch, order or sku (404s, and 400 `invalid_sku`). */
const UNKNOWN_CODES = new Set(['unknown_batch', 'unknown_order', 'unknown_product', 'not_allocated', 'invalid_sku'])

/** The service at `baseUrl`, through its HTTP API; `apiKey` is sent as a bearer token. */
export function httpTarget(baseUrl: string, apiKey: string | null): CliTarget {
  const base = baseUrl.replace(/\/+$/, '')
  async function request(method: string, path: string, body?: unknown): Promise<Answer> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (apiKey) headers.authorization = `Bearer ${apiKey}`
    let response: Response
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
      })
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message
      throw new ServiceRefused(`The service at ${base} cannot be reached: ${cause}`)
    }
    const text = await response.text()
    const json = response.headers.get('content-type')?.includes('json') && text !== ''
    return { status: response.status, body: json ? JSON.parse(text) : text, route: `${method} ${path}` }
  }
  const codeOf = ({ body }: Answer): unknown => (typeof body === 'object' ? body?.code : undefined)
  const refused = (answer: Answer): Error => {
    const { status, body, route } = answer
    const message = typeof body === 'object' && body?.message ? String(body.message) : `HTTP ${status}`
    if (UNKNOWN_CODES.has(codeOf(answer) as string)) return new NotFound(message)
    if (status === 400) return new InvalidInput(message)
    if (status === 401) {
      return new ServiceRefused(
        apiKey
          ? `The service at ${base} does not accept the API key in API_KEY`
          : `The service at ${base} asks for an API key: set API_KEY to one of its keys`,
      )
    }
    // Any other 404 (the service's `not_found`, or another server's page) is a route missing at that URL.
    if (status === 404) return new ServiceRefused(`There is no route ${route} at ${base}; is it the service's URL?`)
    return new ServiceRefused(message)
  }
  const at = (...parts: string[]) => parts.map(encodeURIComponent).join('/')

  return {
    async addBatch(batch) {
      const answer = await request('POST', '/batches', batch)
      if (answer.status !== 200 && answer.status !== 201) throw refused(answer)
      return { created: answer.status === 201 }
    },
    async addBatches(batches) {
      const answer = await request('POST', '/batches/bulk', { batches })
      if (answer.status === 200) return answer.body
      const field = /^batches\.(\d+)\.ref$/.exec(answer.body?.details?.[0]?.field ?? '')
      if (answer.status === 409 && field)
        throw new ConflictingBatch(batches[Number(field[1])]?.ref ?? '', Number(field[1]))
      throw refused(answer)
    },
    async allocate({ holdSeconds, ...line }) {
      const answer = await request('POST', '/allocations', {
        ...line,
        ...(holdSeconds === null ? {} : { holdSeconds }),
      })
      if (answer.status === 409 && answer.body?.code === 'out_of_stock') {
        return { status: 'out_of_stock', batchref: null, eta: null, expiresAt: null }
      }
      if (answer.status !== 201 && answer.status !== 202) throw refused(answer)
      const { status, batchref, eta, expiresAt } = answer.body
      return { status, batchref, eta, expiresAt }
    },
    async changeEta(ref, eta) {
      const answer = await request('PATCH', `/batches/${at(ref)}`, { eta })
      if (answer.status !== 200) throw refused(answer)
    },
    async order(orderid) {
      const answer = await request('GET', `/orders/${at(orderid)}`)
      if (answer.status === 404 && codeOf(answer) === 'unknown_order') return []
      if (answer.status !== 200) throw refused(answer)
      return answer.body.lines
    },
    async product(sku) {
      const answer = await request('GET', `/products/${at(sku)}`)
      if (answer.status === 404 && codeOf(answer) === 'unknown_product') return undefined
      if (answer.status !== 200) throw refused(answer)
      return answer.body
    },
  }
}
