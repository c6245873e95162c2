import { readFileSync } from 'node:fs'

/** Resident memory of a process in MB (VmRSS), `null` once it is gone or where /proc is missing. */
export function rssMB(pid: number): number | null {
  try {
    const kB = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kB === undefined ? null : Number(kB) / 1024
  } catch {
    return null
  }
}

/** Samples the processes' resident memory every `everyMs`; the stop function returns each one's peak in MB. */
export function samplePeakRss(pids: readonly (number | null)[], everyMs = 200): () => (number | null)[] {
  const peaks: (number | null)[] = pids.map(() => null)
  const sample = () => {
    pids.forEach((pid, i) => {
      const mb = pid === null ? null : rssMB(pid)
      if (mb !== null) peaks[i] = Math.max(peaks[i] ?? 0, mb)
    })
  }
  sample()
  const timer = setInterval(sample, everyMs)
  return () => {
    clearInterval(timer)
    sample()
    return peaks
  }
}
