import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import type pg from 'pg'
import { COMMANDS, DEAD_LETTER, fieldsOf, GROUP } from './redis-mixed-redis.ts'
import { waitFor } from './redis-mixed-state.ts'
import { type RunningService, startService } from './support.ts'

/** From when to when nobody was listening to the channel, or only a process about to die, by the clock. */
export type Handover = Readonly<{ from: number; to: number }>

/** What the midway kill left behind. */
export type Killed = Readonly<{
  /** The entries the dead process held, how many of those it had recorded as handled. */
  held: number
  recorded: number
  /** Entries applied lately and delivered again. */
  again: number
  /** When the channel changed hands, the dead process having held it; `null` when it did not. */
  handover: Handover | null
  /** Whether a process listened to the channel again within 20 s. */
  heardAgain: boolean
}>

/** A message received by the process stopped and killed, and not yet applied, dies with it. */
const IN_HAND_MS = 1000

/**
 * Two processes of the service on one PostgreSQL database and one Redis database: the first takes the HTTP
 * writes, the second is the one killed. The second is started first, so that it holds the channel's lease
 * and its death leaves the channel to be taken over.
 */
export async function startDeployment(redis: Redis, database: pg.Client, env: Record<string, string>) {
  /** The running processes. */
  const services: RunningService[] = []
  /** Every process started, the killed one included, for their logs. */
  const started: RunningService[] = []

  /** Whether the process reads the stream (its connections are named). */
  async function consuming({ pid }: RunningService): Promise<boolean> {
    return ((await redis.client('LIST')) as string).split('\n').some((c) => c.includes(`-${pid}:reader `))
  }

  /** The running processes subscribed to the channel: the one holding its lease, if any. */
  async function listening(): Promise<RunningService[]> {
    const connections = ((await redis.client('LIST')) as string).split('\n')
    const subscribed = (pid: number) => (c: string) => c.includes(`-${pid}:subscriber `) && / sub=[1-9]/.test(c)
    return services.filter(({ pid }) => connections.some(subscribed(pid)))
  }

  async function start(): Promise<RunningService> {
    const service = await startService(env)
    started.push(service)
    await waitFor(() => consuming(service), 20_000)
    return service
  }

  const second = await start()
  services.push(second)
  await waitFor(async () => (await listening()).length === 1, 20_000)
  services.unshift(await start())

  async function pendingOf(consumer: string): Promise<string[]> {
    const rows = (await redis.xpending(COMMANDS, GROUP, '-', '+', 10_000, consumer)) as [string, ...unknown[]][]
    return rows.map(([id]) => id)
  }

  /** Stops the second process (SIGSTOP) as it works; answers whether it was listening to the channel. */
  async function pauseSecond(): Promise<{ listened: boolean; at: number }> {
    const victim = services[1] as RunningService
    const listened = (await listening()).includes(victim)
    process.kill(victim.pid, 'SIGSTOP')
    return { listened, at: Date.now() }
  }

  /**
   * Kills the second process, stopped beforehand, and starts it again; the restarted one joins under a
   * new name, so what the dead one held waits to be taken over. To it are added entries applied lately
   * and not dead-lettered (XCLAIM FORCE), as if it had died before acknowledging them: delivered again,
   * they must change nothing. Take-over happens once an entry is idle for 30 s (the consumer's
   * `claimIdleMs`, not configurable from the environment): these entries are aged instead of waiting,
   * which changes nothing else. Waits until a process listens to the channel again.
   */
  async function killAndRestart(paused: { listened: boolean; at: number }): Promise<Killed> {
    const victim = services[1] as RunningService
    // The consumer's name in the group: the service's default.
    const consumer = `${hostname()}-${victim.pid}`
    await victim.kill()
    const held = await pendingOf(consumer)
    const { rows } = await database.query<{ id: string }>(
      'select id from handled_messages order by handled_at desc limit 40',
    )
    const recorded = rows.map((r) => r.id.slice(COMMANDS.length + 1))
    const lettered = new Set((await redis.xrange(DEAD_LETTER, '-', '+')).map(([, fields]) => fieldsOf(fields).id))
    const again = recorded.filter((id) => !held.includes(id) && !lettered.has(id)).slice(0, 20)
    const ids = [...held, ...again]
    if (ids.length > 0)
      await redis.call('XCLAIM', COMMANDS, GROUP, consumer, 0, ...ids, 'IDLE', 3_600_000, 'FORCE', 'JUSTID')
    services[1] = await start()
    const heardAgain = await waitFor(async () => (await listening()).length === 1, 20_000)
    return {
      held: held.length,
      recorded: held.filter((id) => recorded.includes(id)).length,
      again: again.length,
      handover: paused.listened ? { from: paused.at - IN_HAND_MS, to: Date.now() } : null,
      heardAgain,
    }
  }

  return { services, started, listening, pauseSecond, killAndRestart }
}
