import type { Product } from '../domain/model.ts'
import type { LoadOptions, ProductRepository, WaitingPage } from './ports.ts'

/** What a storage adapter provides; the tracking repository adds the bookkeeping of a unit of work. */
export interface ProductStore {
  load(sku: string, load: LoadOptions): Promise<Product | undefined>
  skuOfBatch(ref: string): Promise<string | undefined>
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

  skuOfBatch(ref: string): Promise<string | undefined> {
    return this.#store.skuOfBatch(ref)
  }

  loadWaiting(product: Product, page: WaitingPage): Promise<number | null> {
    return this.#store.loadWaiting(product, page)
  }

  add(product: Product): void {
    this.seen.set(product.sku, product)
  }
}
