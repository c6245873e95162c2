/** Messages that ask the service to change something. Each is handled by exactly one handler. */

export type CreateBatch = Readonly<{
  type: 'CreateBatch'
  ref: string
  sku: string
  qty: number
  /** `null` for stock already in the warehouse, otherwise the arrival date as `YYYY-MM-DD`. */
  eta: string | null
}>

/** Many batches in one transaction, as a bulk import sends them; each is added as `CreateBatch` would. */
export type CreateBatches = Readonly<{
  type: 'CreateBatches'
  batches: ReadonlyArray<Omit<CreateBatch, 'type'>>
}>

/**
 * `backorder` (default false) keeps a line no batch can take as waiting; `holdSeconds` (default null)
 * places a hold for a checkout. Both are optional so that the book's three fields stay a whole command.
 */
export type Allocate = Readonly<{
  type: 'Allocate'
  orderid: string
  sku: string
  qty: number
  backorder?: boolean
  holdSeconds?: number | null
}>

/** Ends a line in whatever state it is: allocated, held or backordered. */
export type Deallocate = Readonly<{ type: 'Deallocate'; orderid: string; sku: string }>

export type ChangeBatchQuantity = Readonly<{ type: 'ChangeBatchQuantity'; ref: string; qty: number }>

/** A shipment slipped (a later date) or arrived (`null`). */
export type ChangeBatchEta = Readonly<{ type: 'ChangeBatchEta'; ref: string; eta: string | null }>

/** Its qty, its eta or both, changed in one transaction; `null` leaves that part as it is. */
export type ChangeBatch = Readonly<{
  type: 'ChangeBatch'
  ref: string
  qty: number | null
  /** Wrapped, since a `null` eta is a change too: the batch has arrived. */
  eta: Readonly<{ to: string | null }> | null
}>

/**
 * Sent by the hold sweep for holds found past their expiry, grouped by sku; each product checks again
 * that each of its holds is still there and past its expiry.
 */
export type ReleaseExpiredHolds = Readonly<{ type: 'ReleaseExpiredHolds'; holds: readonly ExpiredHoldsOf[] }>

/** The orders whose holds of `sku` were found past their expiry. */
export type ExpiredHoldsOf = Readonly<{ sku: string; orderids: readonly string[] }>

export type Command =
  | CreateBatch
  | CreateBatches
  | Allocate
  | Deallocate
  | ChangeBatchQuantity
  | ChangeBatchEta
  | ChangeBatch
  | ReleaseExpiredHolds
