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
