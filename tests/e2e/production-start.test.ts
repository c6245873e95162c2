import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgliteMode, type RunningService, runFailingService, type Storage, startService } from './support.ts'

describe('starting where other machines can reach it', () => {
  it('refuses without API_KEYS on a non-loopback HOST, in one sentence', async () => {
    const storage = await pgliteMode.prepare()
    try {
      const { code, output } = await runFailingService({ ...storage.env, HOST: '0.0.0.0', PORT: '0', API_KEYS: '' })
      expect(code).toBe(2)
      expect(output.trim()).toBe(
        'Refusing to serve on 0.0.0.0 without API_KEYS: anyone who reaches it could change stock; set API_KEYS, ' +
          'listen on 127.0.0.1, or set ALLOW_ANONYMOUS=true to serve without authentication.',
      )
    } finally {
      await storage.drop()
    }
  })

  it('refuses a key whose secret is too short, naming it', async () => {
    const { code, output } = await runFailingService({ API_KEYS: 'shop:write:short', PORT: '0' })
    expect(code).toBe(2)
    expect(output.trim()).toBe('API_KEYS entry 1 (shop) has a secret shorter than 16 characters')
  })
})

describe('the running service with API_KEYS', () => {
  let storage: Storage
  let service: RunningService
  const secret = 'e2e-write-secret-0123456789'

  beforeAll(async () => {
    storage = await pgliteMode.prepare()
    service = await startService({ ...storage.env, HOST: '0.0.0.0', API_KEYS: `shop:write:${secret}` })
  })
  afterAll(async () => {
    await service?.stop()
    await storage?.drop()
  })

  it('serves on a public address with keys, refusing requests without one', async () => {
    const url = service.url.replace('0.0.0.0', '127.0.0.1')
    expect((await fetch(`${url}/products`)).status).toBe(401)
    expect((await fetch(`${url}/products`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200)
    expect((await fetch(`${url}/ready`)).status).toBe(200)
  })

  it('answers a 2 MiB body with its 413 before closing the connection, every time', async () => {
    const url = service.url.replace('0.0.0.0', '127.0.0.1')
    const body = JSON.stringify({ ref: 'x'.repeat(2 * 1024 * 1024), sku: 's', qty: 1, eta: null })
    for (let i = 0; i < 20; i++) {
      const answer = await fetch(`${url}/batches`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
        body,
      })
      expect(answer.status).toBe(413)
      expect(await answer.json()).toEqual({
        message: 'The request body is larger than the limit of 1 MiB',
        code: 'body_too_large',
      })
    }
  })
})
