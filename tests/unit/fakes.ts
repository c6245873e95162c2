import { bootstrap, type Service } from '../../src/bootstrap.ts'
import { loadConfig } from '../../src/config.ts'
import type { DomainEvent } from '../../src/domain/events.ts'
import { Batch, type LineState, type LineStatus, Product } from '../../src/domain/model.ts'
import {
  type Clock,
  ConcurrencyConflict,
  type EventPublisher,
  type ExpiredHolds,
  type LoadOptions,
  type Logger,
  type Notifications,
  type Outbox,
  type ReadViews,
  type StoredEvent,
  type UnitOfWork,
  type WaitingPage,
} from '../../src/service-layer/ports.ts'
import { type ProductStore, TrackingRepository } from '../../src/service-layer/tracking-repository.ts'

type BatchRow = { ref: string; sku: string; eta: string | null; seq: number; purchased: number; allocated: number }
type AllocationRow = {
  id: number
  orderid: string
  sku: string
  qty: number
  status: LineStatus
  batchref: string | null
  expiresAt: number | null
  /** From the ids' sequence when placed on its batch after acceptance; else `null` (its id). */
  placed: number | null
}

const toLine = (a: AllocationRow): LineState => ({
  line: { orderid: a.orderid, sku: a.sku, qty: a.qty },
  status: a.status,
  batchref: a.batchref,
  expiresAt: a.expiresAt,
  accepted: a.id,
  placed: a.placed ?? a.id,
})

/** The committed state, as the database would hold it. */
export class FakeStorage {
  versions = new Map<string, number>()
  batches = new Map<string, BatchRow>()
  allocations: AllocationRow[] = []
  outbox: StoredEvent[] = []
  delivered = new Set<number>()
  handledMessages = new Set<string>()
  nextId = 1
  commits = 0
  /** Waiting lines read by filling, in all. */
  waitingRead = 0

  copy(): FakeStorage {
    const copy = new FakeStorage()
    copy.versions = new Map(this.versions)
    copy.batches = new Map([...this.batches].map(([ref, row]) => [ref, { ...row }]))
    copy.allocations = this.allocations.map((row) => ({ ...row }))
    copy.outbox = [...this.outbox]
    copy.delivered = new Set(this.delivered)
    copy.handledMessages = new Set(this.handledMessages)
    copy.nextId = this.nextId
    copy.commits = this.commits
    copy.waitingRead = this.waitingRead
    return copy
  }
}

class FakeProductStore implements ProductStore {
  readonly loaded = new WeakMap<Product, { version: number | null; orderids: Set<string> }>()
  readonly #storage: FakeStorage

  constructor(storage: FakeStorage) {
    this.#storage = storage
  }

  /** Reads the allocations of `newLines` too: the fake never assumes. */
  async load(
    sku: string,
    { orderids: given = [], newLines = [], excessOf }: LoadOptions,
  ): Promise<Product | undefined> {
    const orderids = [...given, ...newLines]
    await Promise.resolve()
    const s = this.#storage
    const version = s.versions.get(sku)
    if (version === undefined) return undefined
    const ofSku = s.allocations.filter((a) => a.sku === sku)
    const chosen = new Set(ofSku.filter((a) => orderids.includes(a.orderid)))
    if (excessOf) {
      const batch = s.batches.get(excessOf.ref)
      let excess = batch ? batch.allocated - excessOf.qty : 0
      const newestPlaced = ofSku
        .filter((row) => row.batchref === excessOf.ref)
        .sort((a, b) => (b.placed ?? b.id) - (a.placed ?? a.id))
      for (const a of newestPlaced) {
        if (excess <= 0) break
        chosen.add(a)
        excess -= a.qty
      }
    }
    const allocations = ofSku.filter((a) => chosen.has(a))
    const product = new Product({
      sku,
      versionNumber: version,
      batches: [...s.batches.values()]
        .filter((b) => b.sku === sku)
        .map((b) => new Batch({ ...b, purchasedQuantity: b.purchased, allocatedQuantity: b.allocated })),
      lines: allocations.map(toLine),
    })
    this.loaded.set(product, { version, orderids: new Set(allocations.map((a) => a.orderid)) })
    return product
  }

  async skuOfBatch(ref: string): Promise<string | undefined> {
    await Promise.resolve()
    return this.#storage.batches.get(ref)?.sku
  }

  /** Whole products: the fake has no reason to read less. */
  async loadMany(skus: readonly string[]): Promise<Product[]> {
    const products = await Promise.all(skus.map((sku) => this.load(sku, {})))
    return products.filter((p) => p !== undefined)
  }

  async loadWithLines(orderidsOf: ReadonlyMap<string, readonly string[]>): Promise<Product[]> {
    const products = await Promise.all([...orderidsOf].map(([sku, orderids]) => this.load(sku, { orderids })))
    return products.filter((p) => p !== undefined)
  }

  async skusOfBatches(refs: readonly string[]): Promise<Map<string, string>> {
    await Promise.resolve()
    const owners = new Map<string, string>()
    for (const ref of refs) {
      const sku = this.#storage.batches.get(ref)?.sku
      if (sku !== undefined) owners.set(ref, sku)
    }
    return owners
  }

  /**
   * As the database reads the backorder queue: only lines that fit, oldest first; in pages of at most
   * two lines, so that every test reads on from page to page.
   */
  async loadWaiting(product: Product, { after, maxQty, limit }: WaitingPage): Promise<number | null> {
    await Promise.resolve()
    const size = Math.min(limit, 2)
    const page = this.#storage.allocations
      .filter((a) => a.sku === product.sku && a.status === 'backordered' && a.qty <= maxQty && a.id > after)
      .sort((a, b) => a.id - b.id)
      .slice(0, size)
    this.#storage.waitingRead += page.length
    const loaded = this.loaded.get(product)
    for (const row of page) {
      if (product.lines.has(row.orderid)) continue
      product.lines.set(row.orderid, toLine(row))
      loaded?.orderids.add(row.orderid)
    }
    return page.length === size ? (page.at(-1)?.id ?? null) : null
  }

  /** Applies the product's changes to `target`, refusing them if the version moved meanwhile. */
  save(product: Product, target: FakeStorage): void {
    const before = this.loaded.get(product) ?? { version: null, orderids: new Set<string>() }
    if (before.version === product.versionNumber) return
    if ((target.versions.get(product.sku) ?? null) !== before.version) {
      throw new ConcurrencyConflict(`Product ${product.sku} changed concurrently`)
    }
    target.versions.set(product.sku, product.versionNumber)
    for (const b of product.batches) {
      const { ref, sku, eta, seq, purchasedQuantity: purchased, allocatedQuantity: allocated } = b
      target.batches.set(ref, { ref, sku, eta, seq, purchased, allocated })
    }
    target.allocations = target.allocations.flatMap((a) => {
      if (a.sku !== product.sku || !before.orderids.has(a.orderid)) return [a]
      const now = product.lines.get(a.orderid)
      if (!now) return []
      const placed = now.placed === null ? target.nextId++ : a.placed
      return [{ ...a, qty: now.line.qty, status: now.status, batchref: now.batchref, expiresAt: now.expiresAt, placed }]
    })
    for (const { line, status, batchref, expiresAt } of product.lines.values()) {
      if (before.orderids.has(line.orderid)) continue
      if (target.allocations.some((a) => a.sku === line.sku && a.orderid === line.orderid)) {
        throw new ConcurrencyConflict(`Order ${line.orderid} of ${line.sku} allocated concurrently`)
      }
      target.allocations.push({ id: target.nextId++, ...line, status, batchref, expiresAt, placed: null })
    }
  }
}

/** One transaction over `FakeStorage`: it reads committed state and writes at commit, all or nothing. */
export class FakeUnitOfWork implements UnitOfWork {
  readonly products: TrackingRepository
  readonly #store: FakeProductStore
  readonly #storage: FakeStorage
  #committed: StoredEvent[] = []
  readonly #messages: string[] = []

  constructor(storage: FakeStorage) {
    this.#storage = storage
    this.#store = new FakeProductStore(storage)
    this.products = new TrackingRepository(this.#store)
  }

  async commit(): Promise<void> {
    await Promise.resolve()
    const next = this.#storage.copy()
    const stored: StoredEvent[] = []
    for (const product of this.products.seen.values()) {
      this.#store.save(product, next)
      for (const event of product.events.splice(0)) stored.push({ id: next.nextId++, event })
    }
    for (const id of this.#messages) {
      if (next.handledMessages.has(id)) throw new ConcurrencyConflict(`Message ${id} handled concurrently`)
      next.handledMessages.add(id)
    }
    next.outbox.push(...stored)
    next.commits += 1
    Object.assign(this.#storage, next)
    this.#committed.push(...stored)
  }

  collectNewEvents(): StoredEvent[] {
    return this.#committed.splice(0)
  }

  async claimMessage(messageId: string): Promise<boolean> {
    await Promise.resolve()
    if (this.#storage.handledMessages.has(messageId)) return false
    this.#messages.push(messageId)
    return true
  }

  async close(): Promise<void> {}
}

export class FakeOutbox implements Outbox {
  readonly #storage: FakeStorage
  constructor(storage: FakeStorage) {
    this.#storage = storage
  }
  async markDelivered(id: number): Promise<void> {
    this.#storage.delivered.add(id)
  }
  /** Everything undelivered is due at once: the fake has no clock. */
  async claimDue(limit: number): Promise<StoredEvent[]> {
    return this.#storage.outbox.filter((e) => !this.#storage.delivered.has(e.id)).slice(0, limit)
  }
  /** Nothing waits out a backoff here. */
  async retryNow(): Promise<void> {}
}

export class FakeNotifications implements Notifications {
  readonly sent: Array<{ subject: string; body: string }> = []
  async send(subject: string, body: string): Promise<void> {
    this.sent.push({ subject, body })
  }
}

export class FakePublisher implements EventPublisher {
  readonly published: StoredEvent[] = []
  async publish(stored: StoredEvent): Promise<void> {
    this.published.push(stored)
  }
}

type LogLine = { level: 'debug' | 'info' | 'warn' | 'error'; obj: object; msg: string | undefined }

/** Keeps every line; `errors` are those at error. */
export class FakeLogger implements Logger {
  readonly lines: LogLine[] = []
  get errors(): LogLine[] {
    return this.lines.filter((line) => line.level === 'error')
  }
  debug(obj: object, msg?: string): void {
    this.lines.push({ level: 'debug', obj, msg })
  }
  info(obj: object, msg?: string): void {
    this.lines.push({ level: 'info', obj, msg })
  }
  warn(obj: object, msg?: string): void {
    this.lines.push({ level: 'warn', obj, msg })
  }
  error(obj: object, msg?: string): void {
    this.lines.push({ level: 'error', obj, msg })
  }
}

/** A clock the test moves by hand. */
export class FakeClock implements Clock {
  time = Date.parse('2026-11-25T10:00:00Z')
  now(): number {
    return this.time
  }
  advance(seconds: number): void {
    this.time += seconds * 1000
  }
}

export class FakeExpiredHolds implements ExpiredHolds {
  readonly #storage: FakeStorage
  constructor(storage: FakeStorage) {
    this.#storage = storage
  }
  async due(now: number, limit: number) {
    return this.#storage.allocations
      .filter((a) => a.status === 'held' && (a.expiresAt ?? 0) <= now)
      .sort((a, b) => (a.expiresAt ?? 0) - (b.expiresAt ?? 0))
      .slice(0, limit)
      .map(({ orderid, sku }) => ({ orderid, sku }))
  }
}

const noViews: ReadViews = {
  allocations: async () => [],
  order: async () => [],
  batch: async () => undefined,
  product: async () => undefined,
  products: async () => [],
  lines: async () => undefined,
  events: async () => [],
  lastEventId: async () => 0,
  prunedThrough: async () => 0,
}

export type TestApp = Service & {
  storage: FakeStorage
  notifications: FakeNotifications
  publisher: FakePublisher
  logger: FakeLogger
  clock: FakeClock
  /** The events committed so far, in commit order. */
  events(): DomainEvent[]
}

/** The real `bootstrap()` with fakes for every port, as the book's tests do. */
export function bootstrapTestApp(): TestApp {
  const storage = new FakeStorage()
  const notifications = new FakeNotifications()
  const publisher = new FakePublisher()
  const logger = new FakeLogger()
  const clock = new FakeClock()
  const service = bootstrap(loadConfig({}), {
    clock,
    expiredHolds: new FakeExpiredHolds(storage),
    startUnitOfWork: async () => new FakeUnitOfWork(storage),
    outbox: new FakeOutbox(storage),
    notifications,
    publisher,
    logger,
    views: noViews,
  })
  return {
    ...service,
    storage,
    notifications,
    publisher,
    logger,
    clock,
    events: () => storage.outbox.map((e) => e.event),
  }
}
