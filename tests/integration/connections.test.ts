import { CompiledQuery } from 'kysely'
import { describe, expect, it } from 'vitest'
import { type Mode, modes, openTestDatabase } from './support.ts'

describe.each(modes)('connections to the database (%s)', (mode: Mode) => {
  it('are set up before their first statement: plans made once, and no statement queued behind the set-up', async () => {
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(warning.message)
    process.on('warning', onWarning)
    const test = await openTestDatabase(mode)
    try {
      if (!test) throw new Error(`${mode} did not open`)
      const { database } = test
      const show = CompiledQuery.raw('show plan_cache_mode') as CompiledQuery<{ plan_cache_mode: string }>
      // More at once than the migrations used: the pool opens new connections for them.
      const shown = await Promise.all(Array.from({ length: 10 }, () => database.select(show)))
      expect(shown.flat()).toEqual(Array(10).fill({ plan_cache_mode: 'force_generic_plan' }))
      if (mode === 'postgres') expect(database.poolStats()?.total ?? 0).toBeGreaterThan(1)
      // node-postgres warns when a statement is sent on a connection still running another.
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).toEqual([])
    } finally {
      process.off('warning', onWarning)
      await test?.drop()
    }
  })
})
