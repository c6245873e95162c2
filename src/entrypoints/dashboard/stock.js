import { useEffect, useState } from 'preact/hooks'
import { api } from './api.js'
import { Figures, Legend, StockBar } from './bars.js'
import { AddBatch } from './batch-forms.js'
import { html } from './html.js'
import { useChanges } from './live.js'

const everything = () => true

/** Every sku, the shortest stock first (the API's order), with its totals as bars; filtered by text. */
export function StockView() {
  const [products, setProducts] = useState(null)
  const [error, setError] = useState(null)
  const [filter, setFilter] = useState('')
  const changes = useChanges(everything)
  useEffect(() => {
    api('GET', '/products').then((answer) => {
      setProducts(answer)
      setError(null)
    }, setError)
  }, [changes])

  const shown = (products ?? []).filter((p) => p.sku.toLowerCase().includes(filter.trim().toLowerCase()))
  const scale = Math.max(1, ...shown.map((p) => p.totals.purchased + p.totals.backordered))
  return html`<section aria-labelledby="stock-title">
    <h1 id="stock-title">Stock</h1>
    <div class="field">
      <label for="stock-filter">Filter skus</label>
      <input id="stock-filter" type="search" value=${filter} onInput=${(e) => setFilter(e.currentTarget.value)} />
    </div>
    <${Legend} />
    ${error && html`<p class="error" role="alert">${error.message}</p>`}
    ${products === null && !error && html`<p class="quiet">Loading…</p>`}
    ${products?.length === 0 && html`<p class="quiet">No stock yet: add a batch below.</p>`}
    <ul class="stock" aria-label="Skus, shortest stock first">
      ${shown.map(
        (p) => html`<li key=${p.sku} data-sku=${p.sku}>
          <a class="sku" href=${`#/products/${encodeURIComponent(p.sku)}`}>${p.sku}</a>
          <${StockBar} totals=${p.totals} scale=${scale} label=${p.sku} />
          <${Figures} totals=${p.totals} />
        </li>`,
      )}
    </ul>
    ${products?.length > 0 && shown.length === 0 && html`<p class="quiet">No sku matches “${filter}”.</p>`}
    <${AddBatch} />
  </section>`
}
