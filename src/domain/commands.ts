/** Messages that ask the service to change something. Each is handled by exactly one handler. */

export type CreateBatch = Readonly<{
  type: 'CreateBatch'
  ref: string
  sku: string
  qty: number
  /** `null` for stock already in the warehouse, otherwise the arrival date as `YYYY-MM-DD`. */
  eta: string | null
}>

export type Allocate = Readonly<{ type: 'Allocate'; orderid: string; sku: string; qty: number }>

export type Deallocate = Readonly<{ type: 'Deallocate'; orderid: string; sku: string }>

export type ChangeBatchQuantity = Readonly<{ type: 'ChangeBatchQuantity'; ref: string; qty: number }>

export type Command = CreateBatch | Allocate | Deallocate | ChangeBatchQuantity
