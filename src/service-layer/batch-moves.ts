import { ConcurrencyConflict, type StartUnitOfWork, type UnitOfWork } from './ports.ts'

/** Where a line would go: another batch (`allocated` or `held`), the backorder queue, or `released` (a hold). */
export type LineMove = Readonly<{
  orderid: string
  sku: string
  qty: number
  status: 'allocated' | 'held' | 'backordered' | 'released'
  batchref: string | null
}>

/**
 * The lines that setting batch `ref`'s purchased quantity to `qty` would move off it, and where each
 * would go: the product's own change run on a unit of work that is never committed, so the answer is the
 * rule itself, not a copy of it. `undefined` for an unknown batch.
 */
export async function batchMoves(
  startUnitOfWork: StartUnitOfWork,
  ref: string,
  qty: number,
): Promise<LineMove[] | undefined> {
  try {
    return await movesOn(await startUnitOfWork(), ref, qty)
  } catch (error) {
    // The lines changed while they were read: read them again under the product's lock.
    if (!(error instanceof ConcurrencyConflict)) throw error
    return movesOn(await startUnitOfWork({ contended: true }), ref, qty)
  }
}

async function movesOn(uow: UnitOfWork, ref: string, qty: number): Promise<LineMove[] | undefined> {
  try {
    const sku = await uow.products.skuOfBatch(ref)
    const product = sku === undefined ? undefined : await uow.products.get(sku, { excessOf: { ref, qty } })
    if (!product) return undefined
    return product.changeBatchQuantity(ref, qty).map(({ line }) => {
      const now = product.lines.get(line.orderid)
      return { ...line, status: now?.status ?? 'released', batchref: now?.batchref ?? null }
    })
  } finally {
    await uow.close()
  }
}
