import { describe, expect, it } from 'vitest'
import { progressLine } from '../../src/entrypoints/progress-bar.ts'

describe('progressLine', () => {
  it('shows the share done, the rows so far, their rate and the time left', () => {
    expect(progressLine({ done: 250, total: 1000, rows: 12_500, elapsedMs: 2000 })).toBe(
      `[${'#'.repeat(8)}${' '.repeat(22)}] 25%  12,500 rows  6,250 rows/s  ETA 0:06`,
    )
  })

  it('says the time left in hours when it is long', () => {
    expect(progressLine({ done: 1, total: 4000, rows: 10, elapsedMs: 1000 })).toMatch(/ETA 1:06:39$/)
  })

  it('has no rate nor time left before the first row', () => {
    expect(progressLine({ done: 0, total: 1000, rows: 0, elapsedMs: 0 })).toBe(
      `[${' '.repeat(30)}] 0%  0 rows  0 rows/s  ETA --:--`,
    )
  })

  it('says one row in the singular', () => {
    expect(progressLine({ done: 10, total: 1000, rows: 1, elapsedMs: 1000 })).toContain('  1 row  1 rows/s')
  })

  it('is full at the end', () => {
    expect(progressLine({ done: 1000, total: 1000, rows: 40, elapsedMs: 4000 })).toBe(
      `[${'#'.repeat(30)}] 100%  40 rows  10 rows/s  ETA 0:00`,
    )
  })
})
