import type { Product } from '../domain/model.ts'
import type { LoadOptions, ProductRepository, WaitingPage } from './ports.ts'

/** What a storage adapter provides; the tracking repository adds the bookkeeping of a unit of work. */
export interface ProductStore {
  load(sku: string, load: LoadOptions): Promise<Product | undefined>
  loadMany(skus: readonly string[], refs: readonly string[]): Promise<Product[]>
  loadWithLines(orderidsOf: ReadonlyMap<string, readonly string[]>): Promise<Product[]>
  skuOfBatch(ref: string): Promise<string | undefined>
  skusOfBatches(refs: readonly string[]): Promise<Map<string, string>>
  loadWaiting(product: Product, page: WaitingPage): Promise<number | null>
}

/** Remembers every product it hands out or is given, so the unit of work knows what to save. */
export class TrackingRepository implements ProductRepository {
  readonly seen = new Map<string, Product>()
  readonly #store: ProductStore

  constructor(store: ProductStore) {
    this.#store = store
  }

  async get(sku: string, load: LoadOptions = {}): Promise<Product | undefined> {
    const product = this.seen.get(sku) ?? (await this.#store.load(sku, load))
    if (product) this.seen.set(sku, product)
    return product
  }

  getMany(skus: readonly string[], refs: readonly string[]): Promise<Map<string, Product>> {
    return this.#getAll(skus, (unseen) => this.#store.loadMany(unseen, refs))
  }

  getWithLines(orderidsOf: ReadonlyMap<string, readonly string[]>): Promise<Map<string, Product>> {
    return this.#getAll([...orderidsOf.keys()], (unseen) =>
      this.#store.loadWithLines(new Map(unseen.map((sku) => [sku, orderidsOf.get(sku) ?? []]))),
    )
  }

  async #getAll(
    skus: readonly string[],
    load: (unseen: string[]) => Promise<Product[]>,
  ): Promise<Map<string, Product>> {
    const unseen = skus.filter((sku) => !this.seen.has(sku))
    for (const product of unseen.length > 0 ? await load(unseen) : []) {
      this.seen.set(product.sku, product)
    }
    return new Map(skus.flatMap((sku) => (this.seen.has(sku) ? [[sku, this.seen.get(sku) as Product]] : [])))
  }

  skuOfBatch(ref: string): Promise<string | undefined> {
    return this.#store.skuOfBatch(ref)
  }

  skusOfBatches(refs: readonly string[]): Promise<Map<string, string>> {
    return this.#store.skusOfBatches(refs)
  }

  loadWaiting(product: Product, page: WaitingPage): Promise<number | null> {
    return this.#store.loadWaiting(product, page)
  }

  add(product: Product): void {
    this.seen.set(product.sku, product)
  }
}
