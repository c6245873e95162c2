import { useEffect, useRef, useState } from 'preact/hooks'
import { api, path } from './api.js'
import { html } from './html.js'
import { time } from './live.js'

/** The most lines the API lists at once: a sku may have more. */
export const LINES_LIMIT = 1000

/**
 * A page of a sku's lines, `{lines, next}`: its first `LINES_LIMIT`, or those after `after` (a page's
 * `next`). `next` reads on from the page, `null` when no line follows it.
 */
export const skuLines = (sku, after = 0) =>
  api('GET', `${path`/products/${sku}/lines`}?limit=${LINES_LIMIT}&after=${after}`)

/**
 * How much of `qty` (a total the API gives, such as a batch's allocated quantity) the lines `some`, taken
 * from a sku's lines read with `skuLines` up to the cursor `next`, leave out: 0 once no line follows.
 */
export const unlistedQty = (next, some, qty) =>
  next === null ? 0 : Math.max(0, qty - some.reduce((sum, l) => sum + l.qty, 0))

/**
 * The lines on batch `ref` of `sku`, whose lines hold `allocated` of it: read page after page until they
 * hold all of it, no line follows, or `maxPages` are read. `more` says that some were left unread.
 */
export async function linesOnBatch(sku, ref, allocated, maxPages = 10) {
  const on = []
  let next = 0
  for (let pages = 0; pages < maxPages && next !== null && unlistedQty(next, on, allocated) > 0; pages++) {
    const page = await skuLines(sku, next)
    on.push(...page.lines.filter((l) => l.batchref === ref))
    next = page.next
  }
  return { on, more: unlistedQty(next, on, allocated) > 0 }
}

/** Reads the page of a sku's lines after `next` and hands it to `onPage`, at the operator's request. */
export function NextLines({ sku, next, onPage }) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(null)
  const read = async () => {
    setBusy(true)
    setError(null)
    try {
      onPage(await skuLines(sku, next), next)
    } catch (failure) {
      setError(failure)
    } finally {
      setBusy(false)
    }
  }
  return html`<div class="actions">
    <button type="button" class="secondary" disabled=${busy} onClick=${read}>Show the next ${LINES_LIMIT.toLocaleString('en')} lines</button>
    ${error && html`<span class="error" role="alert">${error.message}</span>`}
  </div>`
}

const arrives = (line) => (line.status === 'backordered' ? 'when stock comes' : (line.eta ?? 'now (warehouse)'))

/** Order lines with their state, batch, promised arrival and hold expiry, each one cancellable. */
export function LinesTable({ lines, caption, show = 'orderid' }) {
  const [cancelling, setCancelling] = useState(null)
  const [error, setError] = useState(null)
  const cancel = async (line) => {
    setError(null)
    try {
      await api('DELETE', path`/allocations/${line.orderid}/${line.sku}`)
      setCancelling(null)
    } catch (failure) {
      setError(failure)
    }
  }
  if (lines.length === 0) return null
  return html`<div class="table-scroll"><table class="lines">
    <caption>${caption}</caption>
    <thead>
      <tr>
        <th scope="col">${show === 'orderid' ? 'Order' : 'Sku'}</th>
        <th scope="col">Qty</th>
        <th scope="col">State</th>
        <th scope="col">Batch</th>
        <th scope="col">Arrives</th>
        <th scope="col">Hold expires</th>
        <th scope="col"><span class="visually-hidden">Actions</span></th>
      </tr>
    </thead>
    <tbody>
      ${lines.map((l) => {
        const key = `${l.orderid}/${l.sku}`
        return html`<tr key=${key} data-line=${key}>
          <td>${
            show === 'orderid'
              ? html`<a href=${`#/orders/${encodeURIComponent(l.orderid)}`}>${l.orderid}</a>`
              : html`<a href=${`#/products/${encodeURIComponent(l.sku)}`}>${l.sku}</a>`
          }</td>
          <td>${l.qty}</td>
          <td><span class=${`status ${l.status}`}>${l.status}</span></td>
          <td>${l.batchref ?? '—'}</td>
          <td>${arrives(l)}</td>
          <td>${l.expiresAt ? html`<time datetime=${l.expiresAt}>${time(l.expiresAt)}</time>` : '—'}</td>
          <td>
            ${
              cancelling === key
                ? html`<${ConfirmCancel} line=${l} onYes=${() => cancel(l)} onNo=${() => setCancelling(null)} />`
                : html`<button type="button" class="secondary" aria-label=${`Cancel line ${l.orderid} ${l.sku}`} onClick=${() => setCancelling(key)}>Cancel</button>`
            }
            ${cancelling === key && error && html`<span class="error" role="alert">${error.message}</span>`}
          </td>
        </tr>`
      })}
    </tbody>
  </table></div>`
}

/** Asks before a line is cancelled; the question takes the keyboard focus, so Enter or Tab answers it. */
function ConfirmCancel({ line, onYes, onNo }) {
  const yes = useRef(null)
  useEffect(() => yes.current?.focus(), [])
  return html`<span class="confirm-inline">
    Cancel ${line.orderid}’s ${line.qty} × ${line.sku}?
    <button type="button" class="danger" ref=${yes} onClick=${onYes}>Yes, cancel the line</button>
    <button type="button" class="secondary" onClick=${onNo}>Keep it</button>
  </span>`
}
