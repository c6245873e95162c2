import type {
  Allocate,
  ChangeBatch,
  ChangeBatchEta,
  ChangeBatchQuantity,
  Command,
  CreateBatch,
  CreateBatches,
  Deallocate,
  ReleaseExpiredHolds,
} from '../domain/commands.ts'
import { BatchConflict, HoldWithBackorder, InvalidSku, LineConflict, UnknownBatch } from '../domain/errors.ts'
import type { DomainEvent, OutOfStock } from '../domain/events.ts'
import { type LineOutcome, type LineStatus, type OrderLine, Product } from '../domain/model.ts'
import type { Clock, EventPublisher, Logger, Notifications, UnitOfWork } from './ports.ts'

/** What a handler may use; each message gets its own unit of work. */
export type HandlerDeps = Readonly<{
  uow: UnitOfWork
  notifications: Notifications
  publisher: EventPublisher
  logger: Logger
  clock: Clock
}>

/** A line as an allocation left it; `expiresAt` is ISO 8601 UTC for a hold. */
export type LineResult = Readonly<{
  status: LineStatus | 'out_of_stock'
  batchref: string | null
  eta: string | null
  expiresAt: string | null
}>

export type CommandResults = {
  CreateBatch: Readonly<{ created: boolean }>
  /** How many batches were new, and how many were there already (the same batch again). */
  CreateBatches: Readonly<{ added: number; present: number }>
  Allocate: LineResult
  /** The state the line was in when it ended. */
  Deallocate: Readonly<{ status: LineStatus; batchref: string | null }>
  ChangeBatchQuantity: Readonly<{ deallocated: OrderLine[] }>
  ChangeBatchEta: Readonly<{ deallocated: OrderLine[] }>
  ChangeBatch: Readonly<{ deallocated: OrderLine[] }>
  /** How many of the holds were released (the others were confirmed, extended or gone meanwhile). */
  ReleaseExpiredHolds: Readonly<{ released: number }>
}

export type CommandHandler<C extends Command> = (command: C, deps: HandlerDeps) => Promise<CommandResults[C['type']]>
export type EventHandler<E extends DomainEvent> = (event: E, deps: HandlerDeps, id: number) => Promise<void>

export type CommandHandlers = { readonly [T in Command['type']]: CommandHandler<Extract<Command, { type: T }>> }
export type EventHandlers = {
  readonly [T in DomainEvent['type']]: ReadonlyArray<EventHandler<Extract<DomainEvent, { type: T }>>>
}

/** Waiting lines read per query while filling backorders. */
const WAITING_PAGE = 500

/**
 * When the product gained stock, gives it the waiting lines that can fit, a page at a time (oldest
 * first), until the stock left fits none: never the sku's history, never the lines too large to fit.
 * A page holds no more lines than the stock could take (each line is at least 1), so a long queue
 * costs no more than a short one.
 */
async function fillBackorders(product: Product, uow: UnitOfWork): Promise<void> {
  if (!product.gainedStock) return
  product.gainedStock = false
  for (let after = 0; product.largestAvailable > 0; ) {
    const available = product.batches.reduce((total, b) => total + b.availableQuantity, 0)
    const last = await uow.products.loadWaiting(product, {
      after,
      maxQty: product.largestAvailable,
      limit: Math.min(WAITING_PAGE, available),
    })
    product.fillBackorders(last)
    if (last === null) return
    after = last
  }
}

function lineResult(product: Product, outcome: LineOutcome): LineResult {
  const { status, batchref, expiresAt } = outcome
  return {
    status,
    batchref,
    eta: batchref === null ? null : (product.batch(batchref)?.eta ?? null),
    expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
  }
}

export async function addBatch(command: CreateBatch, { uow }: HandlerDeps): Promise<CommandResults['CreateBatch']> {
  const { ref, sku, qty, eta } = command
  const owner = await uow.products.skuOfBatch(ref)
  if (owner !== undefined && owner !== sku) throw new BatchConflict(ref)
  let product = await uow.products.get(sku)
  if (!product) {
    product = new Product({ sku })
    uow.products.add(product)
  }
  const created = product.addBatch(ref, qty, eta)
  await fillBackorders(product, uow)
  await uow.commit()
  return { created }
}

/** A batch of a bulk command that conflicts with a stored batch or an earlier one of the command. */
export class ConflictingBatch extends BatchConflict {
  /** Its place in the command's list. */
  readonly index: number
  constructor(ref: string, index: number) {
    super(ref)
    this.index = index
  }
}

/** As `addBatch` for each batch, in one transaction: all of them are added, or none. */
export async function addBatches(
  { batches }: CreateBatches,
  { uow }: HandlerDeps,
): Promise<CommandResults['CreateBatches']> {
  const refs = batches.map((b) => b.ref)
  const owners = await uow.products.skusOfBatches(refs)
  const products = await uow.products.getMany([...new Set(batches.map((b) => b.sku))], refs)
  let added = 0
  for (const [index, { ref, sku, qty, eta }] of batches.entries()) {
    if ((owners.get(ref) ?? sku) !== sku) throw new ConflictingBatch(ref, index)
    owners.set(ref, sku)
    let product = products.get(sku)
    if (!product) {
      product = new Product({ sku })
      uow.products.add(product)
      products.set(sku, product)
    }
    try {
      if (product.addBatch(ref, qty, eta)) added += 1
    } catch (error) {
      throw error instanceof BatchConflict ? new ConflictingBatch(ref, index) : error
    }
  }
  for (const product of products.values()) await fillBackorders(product, uow)
  await uow.commit()
  return { added, present: batches.length - added }
}

export async function allocate(command: Allocate, deps: HandlerDeps): Promise<CommandResults['Allocate']> {
  const [result] = await allocateMany([command], deps)
  if (result instanceof Error) throw result
  return result as LineResult
}

/**
 * Several lines of one sku in one transaction, as the bus groups concurrent allocations: a refusal of
 * one line (a conflicting re-send) is that line's result and does not fail the others.
 */
export async function allocateMany(
  commands: readonly Allocate[],
  { uow, clock }: HandlerDeps,
): Promise<Array<CommandResults['Allocate'] | LineConflict | InvalidSku | HoldWithBackorder>> {
  const sku = commands[0]?.sku ?? ''
  const product = await uow.products.get(sku, { newLines: commands.map((c) => c.orderid) })
  if (!product) return commands.map(() => new InvalidSku(sku))
  const now = clock.now()
  const results = commands.map(({ orderid, qty, backorder = false, holdSeconds = null }) => {
    try {
      return lineResult(product, product.allocate({ orderid, sku, qty }, { backorder, holdSeconds, now }))
    } catch (error) {
      if (error instanceof LineConflict || error instanceof HoldWithBackorder) return error
      throw error
    }
  })
  // Every line refused: nothing changed, and an outside message refused is not recorded as handled.
  if (results.every((result) => result instanceof Error)) return results
  await fillBackorders(product, uow)
  await uow.commit()
  return results
}

/** Ends the line in whatever state it is; the stock it frees fills backorders. */
export async function deallocate(command: Deallocate, { uow }: HandlerDeps): Promise<CommandResults['Deallocate']> {
  const { orderid, sku } = command
  const product = await uow.products.get(sku, { orderids: [orderid] })
  if (!product) throw new InvalidSku(sku)
  const { status, batchref } = product.cancel(orderid)
  await fillBackorders(product, uow)
  await uow.commit()
  return { status, batchref }
}

export function changeBatchQuantity(
  { ref, qty }: ChangeBatchQuantity,
  deps: HandlerDeps,
): Promise<CommandResults['ChangeBatchQuantity']> {
  return changeBatch({ type: 'ChangeBatch', ref, qty, eta: null }, deps)
}

export function changeBatchEta(
  { ref, eta }: ChangeBatchEta,
  deps: HandlerDeps,
): Promise<CommandResults['ChangeBatchEta']> {
  return changeBatch({ type: 'ChangeBatch', ref, qty: null, eta: { to: eta } }, deps)
}

/** The eta first, so that lines leaving a shrunk batch are placed by the batches' new etas. */
export async function changeBatch(command: ChangeBatch, { uow }: HandlerDeps): Promise<CommandResults['ChangeBatch']> {
  const { ref, qty, eta } = command
  const sku = await uow.products.skuOfBatch(ref)
  const load = qty === null ? {} : { excessOf: { ref, qty } }
  const product = sku === undefined ? undefined : await uow.products.get(sku, load)
  if (!product) throw new UnknownBatch(ref)
  if (eta) product.changeBatchEta(ref, eta.to)
  const moved = qty === null ? [] : product.changeBatchQuantity(ref, qty)
  await fillBackorders(product, uow)
  await uow.commit()
  return { deallocated: moved.map((l) => l.line) }
}

/** Safe to repeat and to race: the product checks each hold again, and its version guards the save. */
export async function releaseExpiredHolds(
  command: ReleaseExpiredHolds,
  { uow, clock }: HandlerDeps,
): Promise<CommandResults['ReleaseExpiredHolds']> {
  const orderidsOf = new Map(command.holds.map(({ sku, orderids }) => [sku, orderids]))
  const products = await uow.products.getWithLines(orderidsOf)
  const now = clock.now()
  let released = 0
  for (const [sku, product] of products) {
    released += (orderidsOf.get(sku) ?? []).filter((orderid) => product.releaseExpiredHold(orderid, now)).length
    await fillBackorders(product, uow)
  }
  await uow.commit()
  return { released }
}

export async function sendOutOfStockNotification(event: OutOfStock, { notifications }: HandlerDeps): Promise<void> {
  const { orderid, sku, qty } = event
  // An event stored before `backordered` existed has none, and is worded as it was then.
  const outcome = event.backordered
    ? `no batch can take it now, so the line waits as a backorder of ${qty} and is allocated as soon as stock arrives.`
    : 'no batch can take it.'
  await notifications.send(`Out of stock for ${sku}`, `Order ${orderid} asked for ${qty} of ${sku}; ${outcome}`)
}

export async function publishEvent(event: DomainEvent, { publisher }: HandlerDeps, id: number): Promise<void> {
  await publisher.publish({ id, event })
}

export const commandHandlers: CommandHandlers = {
  CreateBatch: addBatch,
  CreateBatches: addBatches,
  Allocate: allocate,
  Deallocate: deallocate,
  ChangeBatchQuantity: changeBatchQuantity,
  ChangeBatchEta: changeBatchEta,
  ChangeBatch: changeBatch,
  ReleaseExpiredHolds: releaseExpiredHolds,
}

export const eventHandlers: EventHandlers = {
  BatchCreated: [publishEvent],
  BatchQuantityChanged: [publishEvent],
  Allocated: [publishEvent],
  Deallocated: [publishEvent],
  OutOfStock: [sendOutOfStockNotification, publishEvent],
  Backordered: [publishEvent],
  Held: [publishEvent],
  HoldReleased: [publishEvent],
  BackorderCancelled: [publishEvent],
  BatchEtaChanged: [publishEvent],
}
