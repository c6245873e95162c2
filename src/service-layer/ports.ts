import type { DomainEvent } from '../domain/events.ts'
import type { Product } from '../domain/model.ts'

/** Which allocations to load with a product; its batches always come whole. */
export type LoadOptions = Readonly<{
  /** The allocations of these orders (for the product's sku), where they exist. */
  orderids?: readonly string[]
  /**
   * Orders whose line of this sku is about to be allocated: loaded as `orderids`, except that the
   * repository may assume them unallocated without reading them, if the save then fails with a
   * `ConcurrencyConflict` where one was allocated after all.
   */
  newLines?: readonly string[]
  /** The most recent allocations of batch `ref` whose quantities together cover its excess over `qty`. */
  excessOf?: Readonly<{ ref: string; qty: number }>
}>

/** A page of the backorder queue: waiting lines accepted after `after` whose qty is at most `maxQty`. */
export type WaitingPage = Readonly<{ after: number; maxQty: number; limit: number }>

export interface ProductRepository {
  get(sku: string, load?: LoadOptions): Promise<Product | undefined>
  /**
   * Adds to `product` the next waiting lines of `page`, oldest first (lines it already has are kept as
   * they are). Returns the acceptance of the last line read when more lines that fit may follow (read
   * on from there), or `null` when the page held all the rest. Reads only lines that fit.
   */
  loadWaiting(product: Product, page: WaitingPage): Promise<number | null>
  /**
   * The existing products of `skus`, to add the batches `refs` to them in one go. A product on which
   * lines wait comes whole (filling them chooses among all its batches); another may come with only
   * those of its batches that are among `refs`, which is all that adding a batch needs to read.
   */
  getMany(skus: readonly string[], refs: readonly string[]): Promise<Map<string, Product>>
  /**
   * The existing products of the skus of `orderidsOf`, each as `get` gives it with the orderids listed for
   * its sku (its lines of those orders, where they exist), all read at once.
   */
  getWithLines(orderidsOf: ReadonlyMap<string, readonly string[]>): Promise<Map<string, Product>>
  /** The sku of batch `ref`, whichever product it belongs to. */
  skuOfBatch(ref: string): Promise<string | undefined>
  /** The sku of each batch of `refs` that exists. */
  skusOfBatches(refs: readonly string[]): Promise<Map<string, string>>
  add(product: Product): void
}

/** A domain event as the outbox stored it: `id` is unique and increases with commit order per sku. */
export type StoredEvent = Readonly<{ id: number; event: DomainEvent }>

/**
 * One transaction. `commit` saves every product the repository handed out together with its new
 * events (to the outbox); `close` ends it, rolling back whatever was not committed.
 */
export interface UnitOfWork {
  readonly products: ProductRepository
  commit(): Promise<void>
  /** The events this unit of work committed, each once. */
  collectNewEvents(): StoredEvent[]
  /**
   * For messages from outside that may be redelivered: false when a message with this id was already
   * committed; otherwise the commit records it, in the same transaction as the change.
   */
  claimMessage(messageId: string): Promise<boolean>
  close(): Promise<void>
}

export type StartUnitOfWork = (options?: UnitOfWorkOptions) => Promise<UnitOfWork>

export type UnitOfWorkOptions = Readonly<{
  /** The previous attempt lost a race for its product: take whatever locks keep this one from losing again. */
  contended?: boolean
}>

/** Delivery bookkeeping of the outbox: what the in-process handlers have fully handled. */
export interface Outbox {
  markDelivered(id: number): Promise<void>
  /**
   * Up to `limit` undelivered events that are due, oldest first, leased to the caller: each is not due
   * again until its backoff (growing with its attempts) has passed, so several processes may sweep at once.
   * A new event is first due a few seconds after its commit, leaving time for its delivery in line.
   */
  claimDue(limit: number): Promise<StoredEvent[]>
  /**
   * Makes the events waiting out a backoff due now, keeping their attempts: what they failed on works
   * again. One claimed in the last few seconds, perhaps still in a sweep's hands, becomes due only when
   * its shortest lease ends, so a sweep of another process does not deliver it a second time meanwhile.
   */
  retryNow(): Promise<void>
}

export interface Notifications {
  /** Tells the stock team; delivery is at least once. */
  send(subject: string, body: string): Promise<void>
}

/** Publishes events to other services; at least once, consumers de-duplicate by `id`. */
export interface EventPublisher {
  publish(stored: StoredEvent): Promise<void>
}

/** The time, as the handlers see it; tests move it by hand. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** Holds past their expiry, found without a scan; the product decides again when releasing each. */
export interface ExpiredHolds {
  /** Up to `limit` lines held with an expiry at or before `now` (epoch ms), the earliest first. */
  due(now: number, limit: number): Promise<Array<Readonly<{ orderid: string; sku: string }>>>
}

/** What happened to one line a caller sent (`Allocate`). */
export type LineOutcome = 'allocated' | 'held' | 'backordered' | 'out_of_stock' | 'line_conflict'

/**
 * Counts of what the service does, as it does it: each call is a few nanoseconds of arithmetic, never a
 * query. Monitoring reads them (Prometheus in production).
 */
export interface Metrics {
  lineOutcome(outcome: LineOutcome): void
  /** A transaction lost a race for its product and is tried again. */
  writeConflictRetried(): void
  /** A message from outside could not be applied and was set aside. */
  deadLettered(): void
}

export const uncountedMetrics: Metrics = {
  lineOutcome: () => {},
  writeConflictRetried: () => {},
  deadLettered: () => {},
}

/** The subset of pino the service layer uses. */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/**
 * A server the service needs (the database; Redis or the mail server for a delivery) refused, dropped the
 * connection or did not answer in time.
 * Nothing is known to have been written; the same request later may succeed.
 */
export class Unavailable extends Error {
  override readonly name: string = 'Unavailable'
}

/**
 * A write lost a race for its product (version changed, serialisation failure); retrying is safe.
 * `refreshed`: the store now knows the product as the winner left it, so a retry without locks can
 * succeed at once. `raced: false`: no other writer was involved, only a guess of the store's proven
 * wrong (a line assumed new exists); the retry reads what it guessed.
 */
export class ConcurrencyConflict extends Error {
  override readonly name = 'ConcurrencyConflict'
  readonly refreshed: boolean
  readonly raced: boolean

  constructor(message: string, options: ErrorOptions & { refreshed?: boolean; raced?: boolean } = {}) {
    super(message, options)
    this.refreshed = options.refreshed ?? false
    this.raced = options.raced ?? true
  }
}

export type BatchView = Readonly<{
  ref: string
  sku: string
  eta: string | null
  purchased: number
  allocated: number
  available: number
}>

/** `held` is part of `allocated`; `backordered` is the qty waiting, on no batch. */
export type StockTotals = Readonly<{
  purchased: number
  allocated: number
  available: number
  backordered: number
  held: number
}>

export type ProductView = Readonly<{
  sku: string
  /** In allocation preference order. */
  batches: BatchView[]
  totals: StockTotals
}>

export type ProductSummary = Readonly<{ sku: string; totals: StockTotals }>

export type AllocationView = Readonly<{ sku: string; batchref: string; qty: number }>

/** A line in any state: `batchref` and `eta` are `null` when backordered, `expiresAt` (ISO) only when held. */
export type LineView = Readonly<{
  orderid: string
  sku: string
  qty: number
  status: 'allocated' | 'held' | 'backordered'
  batchref: string | null
  eta: string | null
  expiresAt: string | null
}>

/** `after`: a page's `next`, to read on from there (0: from the first line). */
export type LinesQuery = Readonly<{ status: LineView['status'] | null; limit: number; after: number }>

/** A page of a sku's lines; `next` reads on after it, `null` when no line follows. */
export type LinesPage = Readonly<{ lines: LineView[]; next: number | null }>

/** The read side: plain queries, consistent as soon as a write has answered. */
export interface ReadViews {
  /** The order's `allocated` lines only (the book's view). */
  allocations(orderid: string): Promise<AllocationView[]>
  /** Every line of the order in any state, in the order they were made. */
  order(orderid: string): Promise<LineView[]>
  batch(ref: string): Promise<BatchView | undefined>
  product(sku: string): Promise<ProductView | undefined>
  /** Every sku with its totals, the least available first (then by sku). */
  products(): Promise<ProductSummary[]>
  /**
   * The sku's lines, oldest first, in one state or any, at most `limit` after `after`; `undefined` when
   * the sku is unknown. With a state, it reads that state's lines alone (partial indexes), not the sku's
   * history; a page costs the same wherever it starts.
   */
  lines(sku: string, query: LinesQuery): Promise<LinesPage | undefined>
  /** Committed events after `after`, in outbox order; one committed late never appears behind a later one. */
  events(after: number, limit: number): Promise<StoredEvent[]>
  /** The id of the newest event `events` would show now, 0 when there is none: where "from now on" starts. */
  lastEventId(): Promise<number>
  /** The id up to which events may have been removed for their age (0: none was): reading after less misses some. */
  prunedThrough(): Promise<number>
}
