import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { availableParallelism, loadavg, release, totalmem } from 'node:os'
import { serverVersion } from './postgres.ts'

export type Machine = Readonly<{
  cpus: number
  cpuModel: string
  memoryGiB: number
  /** 1, 5 and 15 minute load averages when the bench started: above 0.5 the machine was not quiet. */
  loadAverage: readonly number[]
  kernel: string
  node: string
  postgres: string | null
  pglite: string
  autocannon: string
  /** The commit measured, and how many files under src/ differed from it. */
  source: Readonly<{ commit: string; changedFiles: number }> | null
}>

export async function describeMachine(postgresUrl: string): Promise<Machine> {
  return {
    cpus: availableParallelism(),
    cpuModel: cpuModel(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverage: loadavg().map((n) => Math.round(n * 100) / 100),
    kernel: release(),
    node: process.version,
    postgres: await serverVersion(postgresUrl).catch(() => null),
    pglite: packageVersion('@electric-sql/pglite'),
    autocannon: packageVersion('autocannon'),
    source: source(),
  }
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function packageVersion(name: string): string {
  const file = new URL(`../node_modules/${name}/package.json`, import.meta.url)
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

function source(): Machine['source'] {
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: new URL('..', import.meta.url), encoding: 'utf8' }).trim()
  try {
    const changed = git('status', '--porcelain', '--', 'src')
    return { commit: git('rev-parse', '--short', 'HEAD'), changedFiles: changed ? changed.split('\n').length : 0 }
  } catch {
    return null
  }
}
