import { StockBar } from './bars.js'
import { html } from './html.js'
import { unlistedQty } from './lines.js'

const days = (eta) => Math.round((Date.parse(eta) - Date.parse(new Date().toISOString().slice(0, 10))) / 86_400_000)

const when = (eta) => {
  if (eta === null) return 'Warehouse · now'
  const n = days(eta)
  return `${eta} · ${n === 0 ? 'today' : n > 0 ? `in ${n} day${n === 1 ? '' : 's'}` : `${-n} day${n === -1 ? '' : 's'} late`}`
}

/**
 * The sku's batches on a line of time: the warehouse now, then each arrival date. Each batch shows its
 * bar and the lines on it; with a promise, the promised batch is marked and each other says why not.
 * `lines` are the sku's lines read so far and `next` the cursor after them: while it is not null, a batch
 * may have lines not read yet.
 */
export function Timeline({ batches, lines, next, availability, onChange }) {
  const etas = [...new Set(batches.map((b) => b.eta))].sort((a, b) =>
    a === null ? -1 : b === null ? 1 : a < b ? -1 : 1,
  )
  const scale = Math.max(1, ...batches.map((b) => b.purchased))
  const verdict = (ref) => availability?.batches.find((b) => b.ref === ref)
  return html`<ol class="timeline" aria-label="Batches by arrival">
    ${etas.map(
      (eta) => html`<li class="moment" key=${eta ?? 'now'}>
        <h3 class="when">${when(eta)}</h3>
        <ul class="batches">
          ${batches
            .filter((b) => b.eta === eta)
            .map((b) => {
              const promised = availability?.promise?.batchref === b.ref
              const reason = verdict(b.ref)
              const on = lines.filter((l) => l.batchref === b.ref)
              const more = unlistedQty(next, on, b.allocated) > 0
              const rest = Math.max(0, on.length - 6)
              const tail = more
                ? on.length === 0
                  ? 'at least 1, not listed here'
                  : `and at least ${rest + 1} more`
                : rest > 0
                  ? `and ${rest} more`
                  : ''
              return html`<li key=${b.ref} class=${`batch${promised ? ' promised' : ''}${reason && !reason.fits ? ' too-small' : ''}`} data-ref=${b.ref}>
                <p class="batch-head">
                  <strong>${b.ref}</strong>
                  ${promised && html`<span class="badge">Promised</span>`}
                </p>
                <${StockBar} totals=${b} scale=${scale} label=${`Batch ${b.ref}`} />
                <p class="quiet">${b.available} available of ${b.purchased}</p>
                ${reason && !reason.fits && html`<p class="reason">${reason.available} available: too few for ${availability.qty}</p>`}
                ${
                  (on.length > 0 || more) &&
                  html`<p class="on-batch">Lines: ${on.slice(0, 6).map((l) => html`<a href=${`#/orders/${encodeURIComponent(l.orderid)}`}>${l.orderid}</a> `)}${tail}</p>`
                }
                <button type="button" class="secondary" onClick=${() => onChange(b)} aria-label=${`Change batch ${b.ref}`}>Change</button>
              </li>`
            })}
        </ul>
      </li>`,
    )}
  </ol>`
}
