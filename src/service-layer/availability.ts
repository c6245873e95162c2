import type { StartUnitOfWork } from './ports.ts'

export type BatchAvailability = Readonly<{ ref: string; eta: string | null; available: number; fits: boolean }>

export type Availability = Readonly<{
  sku: string
  qty: number
  /** The batch an allocation of `qty` would take now; `null` when none can. */
  promise: Readonly<{ batchref: string; eta: string | null }> | null
  /** Every batch of the sku, in allocation preference order; `fits` when its available qty covers `qty`. */
  batches: BatchAvailability[]
}>

/**
 * What an allocation of `qty` would get now, and why. The promise is the product's own choice (the one
 * `allocate` makes), so the two cannot disagree. Reads the batches alone, none of the sku's lines, and
 * writes nothing. `undefined` for an unknown sku.
 */
export async function availableToPromise(
  startUnitOfWork: StartUnitOfWork,
  sku: string,
  qty: number,
): Promise<Availability | undefined> {
  const uow = await startUnitOfWork()
  try {
    const product = await uow.products.get(sku)
    if (!product) return undefined
    const promised = product.preferredBatch(qty)
    return {
      sku,
      qty,
      promise: promised ? { batchref: promised.ref, eta: promised.eta } : null,
      batches: product.batchesByPreference().map((b) => ({
        ref: b.ref,
        eta: b.eta,
        available: b.availableQuantity,
        fits: b.availableQuantity >= qty,
      })),
    }
  } finally {
    await uow.close()
  }
}
