import autocannon, { type Result } from 'autocannon'

export type LoadSpec = Readonly<{
  url: string
  /** Several services sharing the load, the connections split evenly between them (instead of `url`). */
  urls?: readonly string[]
  /**
   * With `urls`, each sku's lines go to one of them (the i-th sku to `urls[i % urls.length]`), as a router
   * that reads the sku would send them; otherwise any line goes to any of them.
   */
  skuPerProcess?: boolean
  connections: number
  durationS: number
  skus: readonly string[]
  /** Every orderid of the run starts with it, so the database can tell the run's lines apart. */
  orderPrefix: string
  /** Stops early once this many out-of-stock answers came back: the stock is gone. */
  stopAfterOutOfStock?: number
}>

export type LoadResult = Readonly<{
  connections: number
  /** From the first request to the last successful answer. */
  seconds: number
  requests: number
  /**
   * Successful answers (201 for an allocation, 200 for a read), and for allocations the quantity they
   * allocated. The names stay those of the first, allocation-only, bench so older results still read.
   */
  allocated: number
  allocatedQty: number
  allocationsPerSecond: number
  /** Every answer but a success; of those, 409 out_of_stock, 5xx, and the rest. */
  non2xx: number
  outOfStock: number
  serverErrors: number
  otherNon2xx: number
  /** Connection errors and timeouts: requests without an answer. */
  connectionErrors: number
  statusCounts: Readonly<Record<string, number>>
  /** Successful answers in each second of the run: shows whether the rate holds as tables grow. */
  perSecond: readonly number[]
  /** Milliseconds, over every answered request. */
  latency: Readonly<{ mean: number; p50: number; p90: number; p99: number; max: number }>
  /** A few bodies of answers that were neither a success nor out of stock. */
  unexpected: readonly string[]
}>

type Drive = Readonly<{
  urls: readonly string[]
  connections: number
  durationS: number
  method: 'GET' | 'POST'
  /** The next request's path and body, for the `target`-th of `urls`. */
  next: (target: number) => { path: string; body?: string }
  success: number
  /** The quantity a successful answer counts for (allocations: the line's qty). */
  qtyOf?: (text: string) => number
  stopAfterOutOfStock?: number
}>

/** POSTs allocations of random lines (random sku, qty 1..3, a new orderid each) for a duration. */
export function allocate(spec: LoadSpec): Promise<LoadResult> {
  let n = 0
  const urls = spec.urls ?? [spec.url]
  const skusOf = urls.map((_, target) =>
    spec.skuPerProcess ? spec.skus.filter((_, i) => i % urls.length === target) : spec.skus,
  )
  return drive({
    urls,
    connections: spec.connections,
    durationS: spec.durationS,
    method: 'POST',
    next: (target) => {
      const sku = pick(skusOf[target] ?? spec.skus)
      const qty = 1 + Math.floor(Math.random() * 3)
      return { path: '/allocations', body: JSON.stringify({ orderid: `${spec.orderPrefix}-${n++}`, sku, qty }) }
    },
    success: 201,
    qtyOf: (text) => (JSON.parse(text) as { qty: number }).qty,
    ...(spec.stopAfterOutOfStock !== undefined && { stopAfterOutOfStock: spec.stopAfterOutOfStock }),
  })
}

/** GETs `pathOf(random key)` for a duration; 200 is a success. */
export function read(
  spec: Readonly<{ url: string; connections: number; durationS: number; keys: readonly string[] }>,
  pathOf: (key: string) => string,
): Promise<LoadResult> {
  return drive({
    urls: [spec.url],
    connections: spec.connections,
    durationS: spec.durationS,
    method: 'GET',
    next: () => ({ path: pathOf(pick(spec.keys)) }),
    success: 200,
  })
}

function pick<T>(values: readonly T[]): T {
  return values[Math.floor(Math.random() * values.length)] as T
}

function drive(spec: Drive): Promise<LoadResult> {
  let succeeded = 0
  let succeededQty = 0
  let outOfStock = 0
  let lastSuccessAt = 0
  const unexpected: string[] = []
  const latencies: number[] = []
  const perSecond: number[] = []
  const started = performance.now()

  const onResponse = (status: number, text: string) => {
    if (status === spec.success) {
      succeeded++
      succeededQty += spec.qtyOf?.(text) ?? 0
      lastSuccessAt = performance.now()
      const second = Math.floor((lastSuccessAt - started) / 1000)
      perSecond[second] = (perSecond[second] ?? 0) + 1
    } else if (status === 409 && text.includes('"out_of_stock"')) {
      outOfStock++
      if (spec.stopAfterOutOfStock !== undefined && outOfStock >= spec.stopAfterOutOfStock) stopAll()
    } else if (unexpected.length < 5) {
      unexpected.push(`${status} ${text.slice(0, 500)}`)
    }
  }

  const instances: ReturnType<typeof autocannon>[] = []
  const stopAll = () => {
    for (const instance of instances) instance.stop()
  }
  const run = (url: string, target: number, connections: number) =>
    new Promise<Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url,
          connections,
          duration: spec.durationS,
          sampleInt: 100,
          headers: { 'content-type': 'application/json' },
          requests: [
            {
              method: spec.method,
              setupRequest: (request) => {
                const { path, body } = spec.next(target)
                return { ...request, path, ...(body !== undefined && { body }) }
              },
              onResponse,
            },
          ],
        },
        (error, result) => (error ? reject(error) : resolve(result)),
      )
      instance.on('response', (_client, _status, _bytes, ms) => {
        latencies.push(ms)
      })
      instances.push(instance)
    })
  const share = Math.max(1, Math.floor(spec.connections / spec.urls.length))
  return Promise.all(spec.urls.map((url, target) => run(url, target, share))).then((results) => {
    const statusCounts: Record<string, number> = {}
    for (const result of results) {
      for (const [status, { count }] of Object.entries(result.statusCodeStats)) {
        statusCounts[status] = (statusCounts[status] ?? 0) + count
      }
    }
    const serverErrors = Object.entries(statusCounts)
      .filter(([status]) => status.startsWith('5'))
      .reduce((sum, [, n]) => sum + n, 0)
    const seconds = ((lastSuccessAt || performance.now()) - started) / 1000
    const failed = latencies.length - succeeded
    return {
      connections: share * spec.urls.length,
      seconds,
      requests: latencies.length,
      allocated: succeeded,
      allocatedQty: succeededQty,
      allocationsPerSecond: succeeded / seconds,
      non2xx: failed,
      outOfStock,
      serverErrors,
      otherNon2xx: failed - outOfStock - serverErrors,
      connectionErrors: results.reduce((sum, r) => sum + r.errors, 0),
      statusCounts,
      perSecond: Array.from(perSecond, (n) => n ?? 0),
      latency: summarise(latencies),
      unexpected,
    }
  })
}

/** Mean and percentiles of milliseconds. */
export function summarise(values: readonly number[]): LoadResult['latency'] {
  if (values.length === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, max: 0 }
  const sorted = Float64Array.from(values).sort()
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0
  const mean = values.reduce((sum, v) => sum + v, 0) / values.length
  return { mean, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 }
}
