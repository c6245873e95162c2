import { describe, expect, it } from 'vitest'
import { coalesce } from '../../src/service-layer/coalesce.ts'

describe('coalesce', () => {
  it('groups the items that arrive while a group of the same key is at work', async () => {
    const groups: Array<[string, number[]]> = []
    const double = coalesce<string, number, number>(async (key, items) => {
      groups.push([key, items])
      await new Promise((resolve) => setTimeout(resolve, 5))
      return items.map((n) => n * 2)
    })
    const results = await Promise.all([double('a', 1), double('a', 2), double('a', 3), double('b', 4)])
    expect(results).toEqual([2, 4, 6, 8])
    expect(groups).toEqual([
      ['a', [1]],
      ['b', [4]],
      ['a', [2, 3]],
    ])
  })

  it('rejects only the caller whose result is an error, and everyone in a group whose work failed', async () => {
    const check = coalesce<string, number, number>(async (_key, items) => {
      if (items.includes(0)) throw new Error('group failed')
      return items.map((n) => (n < 0 ? new Error(`negative ${n}`) : n))
    })
    const [one, minus] = await Promise.allSettled([check('k', 1), check('k', -1)])
    expect(one).toEqual({ status: 'fulfilled', value: 1 })
    expect(minus).toMatchObject({ status: 'rejected', reason: new Error('negative -1') })
    const settled = await Promise.allSettled([check('k', 5), check('k', 0), check('k', 6)])
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected'])
  })

  it('caps the size of a group', async () => {
    const sizes: number[] = []
    const identity = coalesce<string, number, number>(
      async (_key, items) => {
        sizes.push(items.length)
        await Promise.resolve()
        return items
      },
      { maxGroup: 2 },
    )
    await Promise.all([1, 2, 3, 4, 5].map((n) => identity('k', n)))
    expect(sizes).toEqual([1, 2, 2])
  })

  it('forms a group only once its turn is granted, and gives the turn back after the work', async () => {
    const groups: number[][] = []
    let release: () => void = () => {}
    const granted = new Promise<void>((resolve) => {
      release = resolve
    })
    let turnsHeld = 0
    const turn = async () => {
      await granted
      turnsHeld++
      return () => {
        turnsHeld--
      }
    }
    const collect = coalesce<string, number, number>(
      async (_key, items) => {
        groups.push(items)
        expect(turnsHeld).toBe(1)
        return items
      },
      { turn },
    )
    const all = Promise.all([collect('k', 1), collect('k', 2)])
    await new Promise((resolve) => setTimeout(resolve, 5))
    const late = collect('k', 3)
    release()
    await Promise.all([all, late])
    expect(groups).toEqual([[1, 2, 3]])
    expect(turnsHeld).toBe(0)
  })

  it('lets a new group wait for company when asked to linger', async () => {
    const groups: number[][] = []
    const collect = coalesce<string, number, number>(
      async (_key, items) => {
        groups.push(items)
        return items
      },
      { lingerMs: 20 },
    )
    const first = collect('k', 1)
    await new Promise((resolve) => setTimeout(resolve, 5))
    await Promise.all([first, collect('k', 2), collect('k', 3)])
    expect(groups).toEqual([[1, 2, 3]])
  })
})
