import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

/** Average cores busy during a run, by who used them; `other` is everything else on the machine. */
export type CpuSplit = Readonly<{
  /** `null` for a service the bench did not start. */
  service: number | null
  postgres: number
  bench: number
  other: number
  idle: number
}>

export type CpuSources = Readonly<{
  /** The service's processes (several when scaled out), if the bench started them. */
  servicePid: number | readonly number[] | null
  /** PostgreSQL's processes that work for the service (none on PGlite: it runs inside the service). */
  postgresPids: () => Promise<number[]>
}>

const TICKS_PER_SECOND = clockTicks()

/** Reads /proc at the start and at the end of a run; cheap enough not to disturb it. */
export async function sampleCpu(sources: CpuSources): Promise<() => Promise<CpuSplit | null>> {
  if (!readable('/proc/stat')) return async () => null
  const start = await snapshot(sources)
  return async () => {
    const end = await snapshot(sources)
    const seconds = (end.at - start.at) / 1000
    const cores = (ticks: number) => ticks / TICKS_PER_SECOND / seconds
    const service = sources.servicePid === null ? null : cores(end.service - start.service)
    let postgresTicks = 0
    for (const [pid, ticks] of end.postgres) postgresTicks += ticks - (start.postgres.get(pid) ?? 0)
    const postgres = cores(postgresTicks)
    const bench = (end.bench - start.bench) / 1e6 / seconds
    const total = end.machine.total - start.machine.total
    const idle = ((end.machine.idle - start.machine.idle) / total) * availableParallelism()
    const other = Math.max(0, availableParallelism() - idle - (service ?? 0) - postgres - bench)
    return { service, postgres, bench, other, idle }
  }
}

async function snapshot(sources: CpuSources) {
  const pids = await sources.postgresPids()
  const usage = process.cpuUsage()
  return {
    at: performance.now(),
    service: [sources.servicePid ?? []].flat().reduce((sum, pid) => sum + processTicks(pid), 0),
    postgres: new Map(pids.map((pid) => [pid, processTicks(pid)])),
    bench: usage.user + usage.system,
    machine: machineTicks(),
  }
}

/** utime + stime of a process, 0 once it is gone. */
function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return 0
  }
}

function machineTicks(): { total: number; idle: number } {
  const [, ...values] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/)
  const ticks = values.slice(0, 8).map(Number)
  return { total: ticks.reduce((sum, n) => sum + n, 0), idle: (ticks[3] ?? 0) + (ticks[4] ?? 0) }
}

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
}

function readable(path: string): boolean {
  try {
    readFileSync(path)
    return true
  } catch {
    return false
  }
}
