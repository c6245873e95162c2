import { fdatasyncSync } from 'node:fs'
import { PGlite } from '@electric-sql/pglite'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DurableNodeFS } from '../../src/adapters/postgres/durable-node-fs.ts'
import { pgliteSettings } from '../../src/adapters/postgres/pglite-settings.ts'
import { createDataDir } from '../support/servers.ts'

describe('the embedded database on disk', () => {
  let place: { dir: string; drop: () => Promise<void> }
  let pglite: PGlite
  /** The files flushed so far, one entry a flush. */
  const flushed: number[] = []

  beforeAll(async () => {
    place = await createDataDir()
    const settings = pgliteSettings({ dataDir: place.dir, postgresqlConf: [], initialMemoryBytes: null })
    const fs = new DurableNodeFS(place.dir, (fd) => {
      flushed.push(fd)
      fdatasyncSync(fd)
    })
    pglite = await PGlite.create({ ...settings, fs })
    await pglite.exec('CREATE TABLE line (qty int)')
  })
  afterAll(async () => {
    await pglite?.close()
    await place?.drop()
  })

  it('runs PostgreSQL with fsync on, as the service starts it', async () => {
    expect((await pglite.query('SHOW fsync')).rows).toEqual([{ fsync: 'on' }])
  })

  it('flushes a commit to disk before answering it, and nothing for a read', async () => {
    const before = flushed.length
    await pglite.query('INSERT INTO line VALUES ($1)', [3])
    expect(flushed.length).toBeGreaterThan(before)

    const afterCommit = flushed.length
    await pglite.query('SELECT qty FROM line')
    expect(flushed.length).toBe(afterCommit)
  })
})
