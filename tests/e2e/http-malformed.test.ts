import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgliteMode, type RunningService, type Storage, startService } from './support.ts'

/** Bytes that are not HTTP never reach a route; they still get the service's error shape. */
describe('a request that is not valid HTTP', () => {
  let storage: Storage
  let service: RunningService

  beforeAll(async () => {
    storage = await pgliteMode.prepare()
    service = await startService(storage.env)
  })
  afterAll(async () => {
    await service?.stop()
    await storage?.drop()
  })

  it('answers 400 with a message and a code', async () => {
    const { hostname, port } = new URL(service.url)
    const answer = await new Promise<string>((resolve, reject) => {
      let received = ''
      const socket = connect(Number(port), hostname, () =>
        socket.write('POST /allocations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}'),
      )
      socket.setEncoding('utf8').on('data', (chunk: string) => {
        received += chunk
      })
      socket.on('end', () => resolve(received)).on('error', reject)
    })
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      message: 'The request is not valid HTTP',
      code: 'bad_request',
    })
  })
})
