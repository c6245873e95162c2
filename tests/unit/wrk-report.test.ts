import { describe, expect, it } from 'vitest'
import { parseWrk } from '../../bench/wrk.ts'

/** wrk 4.1.0's report of 2 s of reads, half of them of an unknown sku (404). */
const REPORT = `Running 2s test @ http://127.0.0.1:5077
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.89ms    4.02ms  52.01ms   95.62%
    Req/Sec     1.76k   643.68     2.57k    70.00%
  Latency Distribution
     50%  920.00us
     75%    1.38ms
     90%    2.91ms
     99%   24.84ms
  7017 requests in 2.00s, 3.87MB read
  Non-2xx or 3xx responses: 3398
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:   3505.17
Transfer/sec:      1.93MB
`

describe("the bench's reading of wrk's report", () => {
  it('counts successes, failures and errors, and reads the latencies in milliseconds', () => {
    const result = parseWrk(REPORT, 4)
    expect(result).toMatchObject({ requests: 7017, seconds: 2, allocated: 3619, non2xx: 3398, connectionErrors: 3 })
    expect(result.allocationsPerSecond).toBeCloseTo(1809.5)
    expect(result.latency).toEqual({ mean: 1.89, p50: 0.92, p90: 2.91, p99: 24.84, max: 52.01 })
    // wrk does not tell a 404 from a 500: every answer that is not 2xx is counted as the worse.
    expect(result.serverErrors).toBe(3398)
  })

  it('refuses a report it cannot read rather than give figures it made up', () => {
    expect(() => parseWrk('unable to connect to 127.0.0.1:5077 Connection refused', 10)).toThrow(/Unexpected output/)
  })
})
