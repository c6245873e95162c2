import { useCallback, useEffect, useState } from 'preact/hooks'
import { api, path } from './api.js'
import { Field, FormError, useSubmit } from './forms.js'
import { html } from './html.js'
import { LinesTable } from './lines.js'
import { useChanges } from './live.js'

/**
 * Looks an order up: its lines in every state. Follows the live events of that order, and those of the
 * batches serving its lines (a new eta is the lines' new arrival date).
 */
export function OrderView({ orderid }) {
  const [order, setOrder] = useState(null)
  const [error, setError] = useState(null)
  // Ids hold no control character: the refs joined by a newline are a stable dependency.
  const refs = (order?.lines ?? []).flatMap((l) => l.batchref ?? []).join('\n')
  const changes = useChanges(
    useCallback(
      (e) => e.orderid === orderid || (e.ref !== undefined && refs.split('\n').includes(e.ref)),
      [orderid, refs],
    ),
  )
  useEffect(() => {
    if (!orderid) return
    api('GET', path`/orders/${orderid}`).then(
      (answer) => {
        setOrder(answer)
        setError(null)
      },
      (failure) => {
        setOrder(null)
        setError(failure)
      },
    )
  }, [orderid, changes])
  const form = useSubmit(async (values) => {
    location.hash = `#/orders/${encodeURIComponent(values.orderid.trim())}`
  })
  return html`<section aria-labelledby="orders-title">
    <h1 id="orders-title">Orders</h1>
    <form class="card" role="search" aria-label="Look an order up" onSubmit=${form.onSubmit}>
      <div class="row">
        <${Field} form="lookup" name="orderid" label="Order id" defaultValue=${orderid} error=${error} required />
      </div>
      <${FormError} error=${error} fields=${['orderid']} />
      <button type="submit">Look up</button>
    </form>
    ${
      order &&
      html`<${LinesTable} lines=${order.lines} show="sku" caption=${`Order ${order.orderid}: ${order.lines.length} line(s)`} />`
    }
  </section>`
}
