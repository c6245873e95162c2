/** mulberry32: small, seedable, good enough to pick requests and messages; a seed replays its picks. */
export function randomOf(seed: number) {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T
  return { next, int, pick }
}

export type Random = ReturnType<typeof randomOf>

/** `name n` for each distinct name, sorted: what a failure message says was sent or seen. */
export function tally(names: readonly string[]): string {
  const counts = new Map<string, number>()
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1)
  return [...counts]
    .sort()
    .map(([name, n]) => `${name} ${n}`)
    .join(', ')
}
