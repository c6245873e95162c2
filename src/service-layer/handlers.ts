import type {
  Allocate,
  ChangeBatch,
  ChangeBatchEta,
  ChangeBatchQuantity,
  Command,
  CreateBatch,
  Deallocate,
} from '../domain/commands.ts'
import { BatchConflict, InvalidSku, LineConflict, UnknownBatch } from '../domain/errors.ts'
import type { Deallocated, DomainEvent, OutOfStock } from '../domain/events.ts'
import { type OrderLine, Product } from '../domain/model.ts'
import type { EventPublisher, Logger, Notifications, UnitOfWork } from './ports.ts'

/** What a handler may use; each message gets its own unit of work. */
export type HandlerDeps = Readonly<{
  uow: UnitOfWork
  notifications: Notifications
  publisher: EventPublisher
  logger: Logger
}>

export type CommandResults = {
  CreateBatch: Readonly<{ created: boolean }>
  /** `batchref` is `null` when the line is out of stock. */
  Allocate: Readonly<{ batchref: string | null }>
  Deallocate: Readonly<{ batchref: string }>
  ChangeBatchQuantity: Readonly<{ deallocated: OrderLine[] }>
  ChangeBatchEta: Readonly<{ deallocated: OrderLine[] }>
  ChangeBatch: Readonly<{ deallocated: OrderLine[] }>
}

export type CommandHandler<C extends Command> = (command: C, deps: HandlerDeps) => Promise<CommandResults[C['type']]>
export type EventHandler<E extends DomainEvent> = (event: E, deps: HandlerDeps, id: number) => Promise<void>

export type CommandHandlers = { readonly [T in Command['type']]: CommandHandler<Extract<Command, { type: T }>> }
export type EventHandlers = {
  readonly [T in DomainEvent['type']]: ReadonlyArray<EventHandler<Extract<DomainEvent, { type: T }>>>
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
  await uow.commit()
  return { created }
}

export async function allocate(command: Allocate, { uow }: HandlerDeps): Promise<CommandResults['Allocate']> {
  const { orderid, sku, qty } = command
  const product = await uow.products.get(sku, { newLines: [orderid] })
  if (!product) throw new InvalidSku(sku)
  const batchref = product.allocate({ orderid, sku, qty })
  await uow.commit()
  return { batchref }
}

/**
 * Several lines of one sku in one transaction, as the bus groups concurrent allocations: a refusal of
 * one line (a conflicting re-send) is that line's result and does not fail the others.
 */
export async function allocateMany(
  commands: readonly Allocate[],
  { uow }: HandlerDeps,
): Promise<Array<CommandResults['Allocate'] | LineConflict | InvalidSku>> {
  const sku = commands[0]?.sku ?? ''
  const product = await uow.products.get(sku, { newLines: commands.map((c) => c.orderid) })
  if (!product) return commands.map(() => new InvalidSku(sku))
  const results = commands.map(({ orderid, qty }) => {
    try {
      return { batchref: product.allocate({ orderid, sku, qty }) }
    } catch (error) {
      if (error instanceof LineConflict) return error
      throw error
    }
  })
  await uow.commit()
  return results
}

export async function deallocate(command: Deallocate, { uow }: HandlerDeps): Promise<CommandResults['Deallocate']> {
  const { orderid, sku } = command
  const product = await uow.products.get(sku, { orderids: [orderid] })
  if (!product) throw new InvalidSku(sku)
  const { batchref } = product.deallocate(orderid)
  await uow.commit()
  return { batchref }
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
  await uow.commit()
  return { deallocated: moved.map((a) => a.line) }
}

/** A line taken off a shrunk batch goes to the best other batch; allocating is idempotent, so repeats are safe. */
export async function reallocate(event: Deallocated, deps: HandlerDeps): Promise<void> {
  if (event.reason !== 'batch-shrunk') return
  const { orderid, sku, qty } = event
  const { uow } = deps
  const product = await uow.products.get(sku, { orderids: [orderid] })
  if (!product) throw new InvalidSku(sku)
  if (product.allocations.has(orderid)) return
  product.allocate({ orderid, sku, qty })
  await uow.commit()
}

export async function sendOutOfStockNotification(event: OutOfStock, { notifications }: HandlerDeps): Promise<void> {
  await notifications.send(
    `Out of stock for ${event.sku}`,
    `Order ${event.orderid} asked for ${event.qty} of ${event.sku}; no batch can take it.`,
  )
}

export async function publishEvent(event: DomainEvent, { publisher }: HandlerDeps, id: number): Promise<void> {
  await publisher.publish({ id, event })
}

export const commandHandlers: CommandHandlers = {
  CreateBatch: addBatch,
  Allocate: allocate,
  Deallocate: deallocate,
  ChangeBatchQuantity: changeBatchQuantity,
  ChangeBatchEta: changeBatchEta,
  ChangeBatch: changeBatch,
}

export const eventHandlers: EventHandlers = {
  BatchCreated: [publishEvent],
  BatchQuantityChanged: [publishEvent],
  Allocated: [publishEvent],
  Deallocated: [reallocate, publishEvent],
  OutOfStock: [sendOutOfStockNotification, publishEvent],
  BatchEtaChanged: [publishEvent],
}
