export class InvalidSku extends Error {
  override readonly name = 'InvalidSku'
  readonly sku: string
  constructor(sku: string) {
    super(`Invalid sku ${sku}`)
    this.sku = sku
  }
}

export class UnknownBatch extends Error {
  override readonly name = 'UnknownBatch'
  readonly ref: string
  constructor(ref: string) {
    super(`There is no batch ${ref}`)
    this.ref = ref
  }
}

export class BatchConflict extends Error {
  override readonly name = 'BatchConflict'
  readonly ref: string
  constructor(ref: string) {
    super(`Batch ${ref} already exists with another sku, qty or eta`)
    this.ref = ref
  }
}

export class LineConflict extends Error {
  override readonly name = 'LineConflict'
  readonly orderid: string
  readonly sku: string
  constructor(orderid: string, sku: string, acceptedQty: number) {
    super(`Order ${orderid} already has a line of ${acceptedQty} ${sku}; the same line with another qty is a conflict`)
    this.orderid = orderid
    this.sku = sku
  }
}

export class NotAllocated extends Error {
  override readonly name = 'NotAllocated'
  readonly orderid: string
  readonly sku: string
  constructor(orderid: string, sku: string) {
    super(`Order ${orderid} has no allocation of ${sku}`)
    this.orderid = orderid
    this.sku = sku
  }
}

/** A hold is for a checkout that will take the goods now; it cannot wait for stock. */
export class HoldWithBackorder extends Error {
  override readonly name = 'HoldWithBackorder'
  constructor(orderid: string, sku: string) {
    super(`The line of ${sku} for order ${orderid} asks for a hold and a backorder; a hold cannot wait for stock`)
  }
}
