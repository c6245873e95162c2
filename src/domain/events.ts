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

export type Allocated = Readonly<{ type: 'Allocated'; orderid: string; sku: string; qty: number; batchref: string }>

/**
 * `requested`: the line was cancelled and stays unallocated.
 * `batch-shrunk`: its batch lost stock; the line must be allocated again elsewhere.
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

export type OutOfStock = Readonly<{ type: 'OutOfStock'; orderid: string; sku: string; qty: number }>

export type DomainEvent = BatchCreated | BatchQuantityChanged | Allocated | Deallocated | OutOfStock | BatchEtaChanged
