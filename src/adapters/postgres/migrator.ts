import type { Kysely } from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import * as initial from './migrations/0001-initial.ts'
import * as outboxDelivery from './migrations/0002-outbox-delivery.ts'
import * as lineStates from './migrations/0003-line-states.ts'
import * as queueOrder from './migrations/0004-queue-order.ts'
import * as outboxPayloadStatistics from './migrations/0005-outbox-payload-statistics.ts'
import * as pendingDeliveries from './migrations/0006-pending-deliveries.ts'
import * as outboxHorizon from './migrations/0007-outbox-horizon.ts'
import * as linePlacement from './migrations/0008-line-placement.ts'
import type { Schema } from './schema.ts'

/** Forward-only, in name order; a new migration is a new file added here. */
const migrations: Record<string, Migration> = {
  '0001-initial': initial,
  '0002-outbox-delivery': outboxDelivery,
  '0003-line-states': lineStates,
  '0004-queue-order': queueOrder,
  '0005-outbox-payload-statistics': outboxPayloadStatistics,
  '0006-pending-deliveries': pendingDeliveries,
  '0007-outbox-horizon': outboxHorizon,
  '0008-line-placement': linePlacement,
}

export async function migrateToLatest(db: Kysely<Schema>): Promise<string[]> {
  return migrate(db, (migrator) => migrator.migrateToLatest())
}

/** Up to and including migration `name`: for testing what a migration does to the data before it. */
export async function migrateUpTo(db: Kysely<Schema>, name: string): Promise<string[]> {
  return migrate(db, (migrator) => migrator.migrateTo(name))
}

async function migrate(
  db: Kysely<Schema>,
  run: (migrator: Migrator) => ReturnType<Migrator['migrateToLatest']>,
): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const { error, results = [] } = await run(migrator)
  if (error) throw error
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

/** The migrations this code knows that the database has not run yet. */
export async function pendingMigrations(db: Kysely<Schema>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const known = await migrator.getMigrations()
  return known.filter((m) => m.executedAt === undefined).map((m) => m.name)
}
