import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase } from '../../src/adapters/postgres/database.ts'
import { migrateToLatest, migrateUpTo } from '../../src/adapters/postgres/migrator.ts'
import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import { type App, buildApp } from '../../src/entrypoints/http/app.ts'
import { createDataDir } from '../support/servers.ts'

describe('GET /ready', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let database: Database
  let service: Service
  let app: App

  beforeAll(async () => {
    place = await createDataDir()
    database = openDatabase({ databaseUrl: null, dataDir: place.dir, poolSize: 1 })
    await migrateUpTo(database.db, '0001-initial')
    service = bootstrap(loadConfig({ LOG_LEVEL: 'silent' }), { database })
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await place?.drop()
  })

  it('answers 503 unready, naming the migrations not run, while the schema is behind the code', async () => {
    const answer = await app.inject({ method: 'GET', url: '/ready' })
    expect(answer.statusCode).toBe(503)
    expect(answer.json()).toEqual({
      status: 'unready',
      checks: {
        database: expect.stringMatching(/^migrations not run: 0002-outbox-delivery, 0003-line-states/),
        redis: 'off',
      },
    })
  })

  it('answers 200 ready once they are run', async () => {
    await migrateToLatest(database.db)
    const answer = await app.inject({ method: 'GET', url: '/ready' })
    expect(answer.statusCode).toBe(200)
    expect(answer.json()).toEqual({ status: 'ready', checks: { database: 'ok', redis: 'off' } })
  })
})

describe('GET /ready with a Redis that refuses connections', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let service: Service
  let app: App

  beforeAll(async () => {
    place = await createDataDir()
    const database = openDatabase({ databaseUrl: null, dataDir: place.dir, poolSize: 1 })
    await migrateToLatest(database.db)
    const redisUrl = `redis://127.0.0.1:${await closedPort()}`
    service = bootstrap(loadConfig({ LOG_LEVEL: 'silent', REDIS_URL: redisUrl }), { database })
    app = buildApp(service)
  })
  afterAll(async () => {
    await app?.close()
    await service?.close()
    await place?.drop()
  })

  it('says Redis refused the connection, at once, however long it has been refusing', async () => {
    // The second time, the client has been waiting 2 s between attempts to connect for a while.
    for (const pauseMs of [0, 6000]) {
      await sleep(pauseMs)
      const started = Date.now()
      const answer = await app.inject({ method: 'GET', url: '/ready' })
      expect(answer.statusCode).toBe(503)
      expect(answer.json()).toEqual({
        status: 'unready',
        checks: { database: 'ok', redis: 'Redis refused the connection (ECONNREFUSED)' },
      })
      expect(Date.now() - started).toBeLessThan(1000)
    }
  })
})

/** A port on this machine where nothing listens: connections to it are refused. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
