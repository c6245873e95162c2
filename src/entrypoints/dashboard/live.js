import { useEffect, useState } from 'preact/hooks'
import { currentKey, onKeyChange } from './api.js'

const listeners = new Set()

/** Hands newly arrived events to every view that listens. */
export function publish(events) {
  for (const listener of listeners) listener(events)
}

/**
 * A number that grows when events that `concerns` arrive: a view reloads what it shows when it changes,
 * so it follows the service without a reload of the page. A burst of events is one change, at most a few
 * times a second, so a busy service does not make the page reload without end. A key given grows it too:
 * the view may now show what the service refused before.
 */
export function useChanges(concerns) {
  const [count, setCount] = useState(0)
  useEffect(() => {
    let timer = null
    const change = () => {
      timer ??= setTimeout(() => {
        timer = null
        setCount((n) => n + 1)
      }, 200)
    }
    const listener = (events) => {
      if (events.some((e) => concerns(e.data))) change()
    }
    listeners.add(listener)
    const ignore = onKeyChange(() => {
      if (currentKey() !== null) change()
    })
    return () => {
      listeners.delete(listener)
      ignore()
      clearTimeout(timer)
    }
  }, [concerns])
  return count
}

/** One line of the live feed, in the service's own words. */
export function describe(event) {
  const e = event.data
  const line = `${e.orderid} (${e.qty} × ${e.sku})`
  switch (e.type) {
    case 'BatchCreated':
      return `Batch ${e.ref} added: ${e.qty} × ${e.sku}, ${e.eta ? `arriving ${e.eta}` : 'in the warehouse'}`
    case 'BatchQuantityChanged':
      return `Batch ${e.ref} of ${e.sku} now has ${e.qty}`
    case 'BatchEtaChanged':
      return `Batch ${e.ref} of ${e.sku} ${e.eta ? `now arrives ${e.eta}` : 'arrived in the warehouse'}`
    case 'Allocated':
      return `${line} allocated to ${e.batchref}`
    case 'Deallocated':
      return `${line} taken off ${e.batchref} (${e.reason ?? 'requested'})`
    case 'Held':
      return `${line} held on ${e.batchref}`
    case 'HoldReleased':
      return `${line}: hold on ${e.batchref} released (${e.reason})`
    case 'Backordered':
      return `${line} waits for stock (backordered)`
    case 'BackorderCancelled':
      return `${line}: backorder cancelled`
    case 'OutOfStock':
      return `Out of stock: ${line}`
    default:
      return `${e.type}${e.sku ? ` (${e.sku})` : ''}`
  }
}

export const time = (iso) => (iso ? new Date(iso).toLocaleString() : '')
