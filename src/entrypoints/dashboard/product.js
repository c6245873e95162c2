import { useCallback, useEffect, useState } from 'preact/hooks'
import { AllocateForm } from './allocate-form.js'
import { api, path } from './api.js'
import { Figures, Legend, StockBar } from './bars.js'
import { AddBatch, ChangeBatch } from './batch-forms.js'
import { html } from './html.js'
import { LinesTable } from './lines.js'
import { useChanges } from './live.js'
import { PromiseForm } from './promise.js'
import { Timeline } from './timeline.js'

/** A sku's page: totals, its batches on the eta timeline, promises, actions and its lines. */
export function ProductView({ sku }) {
  const [product, setProduct] = useState(null)
  const [lines, setLines] = useState([])
  const [error, setError] = useState(null)
  const [availability, setAvailability] = useState(null)
  const [changing, setChanging] = useState(null)
  const [notice, setNotice] = useState(null)
  const changes = useChanges(useCallback((e) => e.sku === sku, [sku]))

  useEffect(() => {
    Promise.all([
      api('GET', path`/products/${sku}`),
      api('GET', `${path`/products/${sku}/lines`}?limit=1000`),
      availability && api('GET', `${path`/products/${sku}/availability`}?qty=${availability.qty}`),
    ]).then(([p, l, a]) => {
      setProduct(p)
      setLines(l.lines)
      if (a) setAvailability(a)
      setError(null)
    }, setError)
  }, [sku, changes])

  if (error) {
    return html`<section><h1>${sku}</h1><p class="error" role="alert">${error.message}</p><${AddBatch} sku=${sku} /></section>`
  }
  if (!product) return html`<section><h1>${sku}</h1><p class="quiet">Loading…</p></section>`
  const waiting = lines.filter((l) => l.status === 'backordered')
  const placed = lines.filter((l) => l.status !== 'backordered')
  return html`<section aria-labelledby="product-title">
    <p><a href="#/">← Stock</a></p>
    <h1 id="product-title">${sku}</h1>
    <${StockBar} totals=${product.totals} scale=${product.totals.purchased + product.totals.backordered} label=${sku} />
    <${Figures} totals=${product.totals} />
    <${Legend} />
    ${notice && html`<p class="done" role="status">${notice}</p>`}
    <h2>Batches by arrival</h2>
    <${Timeline} batches=${product.batches} lines=${lines} availability=${availability} onChange=${setChanging} />
    ${
      changing &&
      html`<${ChangeBatch}
        key=${changing.ref}
        batch=${product.batches.find((b) => b.ref === changing.ref) ?? changing}
        onClose=${(done) => {
          setChanging(null)
          setNotice(done)
        }}
      />`
    }
    <div class="columns">
      <${PromiseForm} sku=${sku} availability=${availability} onAnswer=${setAvailability} />
      <${AllocateForm} sku=${sku} />
    </div>
    <${LinesTable} lines=${waiting} caption=${`Waiting for stock (backordered), in the order they are filled: ${waiting.length}`} />
    <${LinesTable} lines=${placed} caption=${`Lines on batches (allocated or held): ${placed.length}`} />
    <${AddBatch} sku=${sku} />
  </section>`
}
