/** Facts the domain records; every one is written to the outbox with the change that raised it. */

export type BatchCreated = Readonly<{
  type: 'BatchCreated'
  ref: string
  sku: string
  qty: number
  eta: string | null
}>

export type BatchQuantityChanged = Readonly<{ type: 'BatchQuantityChanged'; ref: string; sku: string; qty: number }>

/** A shipment's new arrival date, or `null` when it reached the warehouse. */
export type BatchEtaChanged = Readonly<{ type: 'BatchEtaChanged'; ref: string; sku: string; eta: string | null }>

/** A line now served by a batch: allocated at once, a backorder filled, or a hold confirmed. */
export type Allocated = Readonly<{ type: 'Allocated'; orderid: string; sku: string; qty: number; batchref: string }>

/**
 * `requested`: the line was cancelled.
 * `batch-shrunk`: its batch lost stock; the line went to another batch or waits as a backorder.
 */
export type DeallocationReason = 'requested' | 'batch-shrunk'

export type Deallocated = Readonly<{
  type: 'Deallocated'
  orderid: string
  sku: string
  qty: number
  batchref: string
  reason: DeallocationReason
}>

/** No batch can take the line. `backordered`: it waits for stock (a `Backordered` came first); else refused. */
export type OutOfStock = Readonly<{
  type: 'OutOfStock'
  orderid: string
  sku: string
  qty: number
  backordered: boolean
}>

/** A line accepted without a batch: it waits for stock. */
export type Backordered = Readonly<{ type: 'Backordered'; orderid: string; sku: string; qty: number }>

/** A hold placed, extended, or moved to another batch; `expiresAt` is ISO 8601 UTC. */
export type Held = Readonly<{
  type: 'Held'
  orderid: string
  sku: string
  qty: number
  batchref: string
  expiresAt: string
}>

export type HoldReleaseReason = 'expired' | 'cancelled' | 'batch-shrunk'

export type HoldReleased = Readonly<{
  type: 'HoldReleased'
  orderid: string
  sku: string
  qty: number
  batchref: string
  reason: HoldReleaseReason
}>

export type BackorderCancelled = Readonly<{ type: 'BackorderCancelled'; orderid: string; sku: string; qty: number }>

export type DomainEvent =
  | BatchCreated
  | BatchQuantityChanged
  | Allocated
  | Deallocated
  | OutOfStock
  | Backordered
  | Held
  | HoldReleased
  | BackorderCancelled
  | BatchEtaChanged
