import { useCallback, useEffect, useState } from 'preact/hooks'
import { AllocateForm } from './allocate-form.js'
import { api, path } from './api.js'
import { Figures, Legend, StockBar } from './bars.js'
import { AddBatch, ChangeBatch } from './batch-forms.js'
import { html } from './html.js'
import { LinesTable, NextLines, skuLines, unlistedQty } from './lines.js'
import { useChanges } from './live.js'
import { PromiseForm } from './promise.js'
import { Timeline } from './timeline.js'

const figure = (n) => n.toLocaleString('en')
const qtyOf = (lines) => figure(lines.reduce((sum, l) => sum + l.qty, 0))

/**
 * A sku's lines as `{lines, next, pages}`, read page after page until `pages` are read or no line follows:
 * a live reload keeps on screen the lines the operator asked to see.
 */
async function firstPages(sku, pages) {
  let read = { ...(await skuLines(sku)), pages: 1 }
  while (read.pages < pages && read.next !== null) {
    const page = await skuLines(sku, read.next)
    read = { lines: [...read.lines, ...page.lines], next: page.next, pages: read.pages + 1 }
  }
  return read
}

/** Says plainly that the page lists only some of the sku's lines, and how much of its stock those hold. */
function cutShort(sku, totals, lines, placed, waiting) {
  const parts = [
    [placed, totals.allocated, 'allocated'],
    [waiting, totals.backordered, 'backordered'],
  ].filter(([, total]) => total > 0)
  const hold = parts.map(([some, total, what]) => `${qtyOf(some)} of the ${figure(total)} ${what}`).join(' and ')
  return (
    `${sku} has more lines than the service lists at once: this page shows its first ${figure(lines.length)}, ` +
    `which hold ${hold}. Show the next ones below, or look any other line up by its order.`
  )
}

/** A sku's page: totals, its batches on the eta timeline, promises, actions and its lines. */
export function ProductView({ sku }) {
  const [product, setProduct] = useState(null)
  const [read, setRead] = useState({ lines: [], next: null, pages: 1 })
  const [error, setError] = useState(null)
  const [availability, setAvailability] = useState(null)
  const [changing, setChanging] = useState(null)
  const [notice, setNotice] = useState(null)
  const changes = useChanges(useCallback((e) => e.sku === sku, [sku]))

  useEffect(() => {
    Promise.all([
      api('GET', path`/products/${sku}`),
      firstPages(sku, read.pages),
      availability && api('GET', `${path`/products/${sku}/availability`}?qty=${availability.qty}`),
    ]).then(([p, r, a]) => {
      setProduct(p)
      setRead(r)
      if (a) setAvailability(a)
      setError(null)
    }, setError)
  }, [sku, changes])

  if (error) {
    return html`<section><h1>${sku}</h1><p class="error" role="alert">${error.message}</p><${AddBatch} sku=${sku} /></section>`
  }
  if (!product) return html`<section><h1>${sku}</h1><p class="quiet">Loading…</p></section>`
  const { lines, next } = read
  // A reload may have replaced the lines since the page was asked for: it is added only where it follows.
  const append = (page, after) =>
    setRead((shown) =>
      shown.next === after
        ? { lines: [...shown.lines, ...page.lines], next: page.next, pages: shown.pages + 1 }
        : shown,
    )
  const waiting = lines.filter((l) => l.status === 'backordered')
  const placed = lines.filter((l) => l.status !== 'backordered')
  const unlisted = {
    placed: unlistedQty(next, placed, product.totals.allocated),
    waiting: unlistedQty(next, waiting, product.totals.backordered),
  }
  const caption = (words, some, part) =>
    `${words}: ${unlisted[part] > 0 ? `the first ${figure(some.length)} only` : figure(some.length)}`
  return html`<section aria-labelledby="product-title">
    <p><a href="#/">← Stock</a></p>
    <h1 id="product-title">${sku}</h1>
    <${StockBar} totals=${product.totals} scale=${product.totals.purchased + product.totals.backordered} label=${sku} />
    <${Figures} totals=${product.totals} />
    <${Legend} />
    ${notice && html`<p class="done" role="status">${notice}</p>`}
    <h2>Batches by arrival</h2>
    <${Timeline} batches=${product.batches} lines=${lines} next=${next} availability=${availability} onChange=${setChanging} />
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
    ${lines.length === 0 && html`<p class="quiet">No order lines for ${sku} yet.</p>`}
    ${unlisted.placed + unlisted.waiting > 0 && html`<p class="notice">${cutShort(sku, product.totals, lines, placed, waiting)}</p>`}
    <${LinesTable} lines=${waiting} caption=${caption('Waiting for stock (backordered), in the order they are filled', waiting, 'waiting')} />
    <${LinesTable} lines=${placed} caption=${caption('Lines on batches (allocated or held)', placed, 'placed')} />
    ${next !== null && html`<${NextLines} sku=${sku} next=${next} onPage=${append} />`}
    <${AddBatch} sku=${sku} />
  </section>`
}
