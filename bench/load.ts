import autocannon from 'autocannon'

export type LoadSpec = Readonly<{
  url: string
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
  /** From the first request to the last successful allocation. */
  seconds: number
  requests: number
  /** 201 answers, and the quantity they allocated. */
  allocated: number
  allocatedQty: number
  allocationsPerSecond: number
  /** Every answer but a 201; of those, 409 out_of_stock, 5xx, and the rest. */
  non2xx: number
  outOfStock: number
  serverErrors: number
  otherNon2xx: number
  /** Connection errors and timeouts: requests without an answer. */
  connectionErrors: number
  statusCounts: Readonly<Record<string, number>>
  /** Successful allocations in each second of the run: shows whether the rate holds as tables grow. */
  perSecond: readonly number[]
  /** Milliseconds, over every answered request. */
  latency: Readonly<{ mean: number; p50: number; p90: number; p99: number; max: number }>
  /** A few bodies of answers that were neither 201 nor out of stock. */
  unexpected: readonly string[]
}>

/** POSTs allocations of random lines (random sku, qty 1..3, a new orderid each) for a duration. */
export function allocate(spec: LoadSpec): Promise<LoadResult> {
  let next = 0
  let allocated = 0
  let allocatedQty = 0
  let outOfStock = 0
  let lastAllocatedAt = 0
  const unexpected: string[] = []
  const latencies: number[] = []
  const perSecond: number[] = []
  const started = performance.now()

  const body = () => {
    const sku = spec.skus[Math.floor(Math.random() * spec.skus.length)]
    const qty = 1 + Math.floor(Math.random() * 3)
    return JSON.stringify({ orderid: `${spec.orderPrefix}-${next++}`, sku, qty })
  }
  const onResponse = (status: number, text: string) => {
    if (status === 201) {
      allocated++
      allocatedQty += (JSON.parse(text) as { qty: number }).qty
      lastAllocatedAt = performance.now()
      const second = Math.floor((lastAllocatedAt - started) / 1000)
      perSecond[second] = (perSecond[second] ?? 0) + 1
    } else if (status === 409 && text.includes('"out_of_stock"')) {
      outOfStock++
      if (spec.stopAfterOutOfStock !== undefined && outOfStock >= spec.stopAfterOutOfStock) instance.stop()
    } else if (unexpected.length < 5) {
      unexpected.push(`${status} ${text.slice(0, 500)}`)
    }
  }

  let instance: ReturnType<typeof autocannon>
  return new Promise((resolve, reject) => {
    instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: spec.durationS,
        sampleInt: 100,
        headers: { 'content-type': 'application/json' },
        requests: [
          {
            method: 'POST',
            path: '/allocations',
            setupRequest: (request) => ({ ...request, body: body() }),
            onResponse,
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error)
        const statusCounts = Object.fromEntries(Object.entries(result.statusCodeStats).map(([s, v]) => [s, v.count]))
        const serverErrors = Object.entries(statusCounts)
          .filter(([status]) => status.startsWith('5'))
          .reduce((sum, [, n]) => sum + n, 0)
        const seconds = ((lastAllocatedAt || performance.now()) - started) / 1000
        resolve({
          connections: spec.connections,
          seconds,
          requests: latencies.length,
          allocated,
          allocatedQty,
          allocationsPerSecond: allocated / seconds,
          non2xx: result.non2xx,
          outOfStock,
          serverErrors,
          otherNon2xx: result.non2xx - outOfStock - serverErrors,
          connectionErrors: result.errors,
          statusCounts,
          perSecond: Array.from(perSecond, (n) => n ?? 0),
          latency: summarise(latencies),
          unexpected,
        })
      },
    )
    instance.on('response', (_client, _status, _bytes, ms) => {
      latencies.push(ms)
    })
  })
}

function summarise(values: number[]): LoadResult['latency'] {
  if (values.length === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, max: 0 }
  const sorted = Float64Array.from(values).sort()
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? 0
  const mean = values.reduce((sum, v) => sum + v, 0) / values.length
  return { mean, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 }
}
