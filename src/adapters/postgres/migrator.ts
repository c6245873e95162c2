import type { Kysely } from 'kysely'
import { type Migration, Migrator } from 'kysely/migration'
import * as initial from './migrations/0001-initial.ts'
import * as outboxDelivery from './migrations/0002-outbox-delivery.ts'
import * as lineStates from './migrations/0003-line-states.ts'
import type { Schema } from './schema.ts'

/** Forward-only, in name order; a new migration is a new file added here. */
const migrations: Record<string, Migration> = {
  '0001-initial': initial,
  '0002-outbox-delivery': outboxDelivery,
  '0003-line-states': lineStates,
}

export async function migrateToLatest(db: Kysely<Schema>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const { error, results = [] } = await migrator.migrateToLatest()
  if (error) throw error
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
}
