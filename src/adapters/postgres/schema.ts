import type { Generated } from 'kysely'

export interface ProductsTable {
  sku: string
  version_number: number
}

export interface BatchesTable {
  id: Generated<number>
  ref: string
  sku: string
  /** A `date` column, read back as `YYYY-MM-DD` text (see database.ts). */
  eta: string | null
  purchased: number
  allocated: number
}

export interface AllocationsTable {
  id: Generated<number>
  orderid: string
  sku: string
  qty: number
  /** `null` while backordered. */
  batch_id: number | null
  status: Generated<'allocated' | 'held' | 'backordered'>
  /** Set only while held. */
  expires_at: Date | null
  /** From the ids' sequence, when the line was placed on its batch after it was accepted; else `null` (its id). */
  placed: number | null
}

export interface OutboxTable {
  id: Generated<number>
  sku: string
  type: string
  payload: unknown
  created_at: Generated<Date>
  /** The writing transaction (`xid8`, as text): readers show only events of finished transactions. */
  xid: Generated<string>
}

/** An event not yet delivered: written with it, deleted once it is. */
export interface PendingDeliveriesTable {
  id: number
  sku: string
  due_at: Generated<Date>
  attempts: Generated<number>
}

/** One row: events up to this id may have been removed from the outbox (0: none). */
export interface OutboxHorizonTable {
  one: Generated<boolean>
  pruned_through: Generated<number>
}

export interface HandledMessagesTable {
  id: string
  handled_at: Generated<Date>
}

export interface Schema {
  products: ProductsTable
  batches: BatchesTable
  allocations: AllocationsTable
  outbox: OutboxTable
  pending_deliveries: PendingDeliveriesTable
  outbox_horizon: OutboxHorizonTable
  handled_messages: HandledMessagesTable
}
