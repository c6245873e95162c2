import { html } from './html.js'

/**
 * A sku's or a batch's stock as one bar: allocated (of which held) and available make up what was
 * purchased; backordered, on no batch, is drawn past it. `scale` is the quantity the full width stands
 * for, so bars side by side compare. The figures are also said in words, for every reader.
 */
export function StockBar({ totals, scale, label }) {
  const { purchased, allocated, available, held = 0, backordered = 0 } = totals
  const width = (qty) => `${scale > 0 ? (100 * qty) / scale : 0}%`
  const segments = [
    ['allocated', allocated - held],
    ['held', held],
    ['available', Math.max(available, 0)],
    ['backordered', backordered],
  ]
  const words =
    `${label}: purchased ${purchased}, allocated ${allocated}` +
    `${held ? ` (held ${held})` : ''}, available ${available}${backordered ? `, backordered ${backordered}` : ''}`
  return html`<div class="bar" role="img" aria-label=${words} title=${words}>
    ${segments.map(([name, qty]) =>
      qty > 0 ? html`<span class=${`segment ${name}`} style=${{ width: width(qty) }}></span>` : null,
    )}
  </div>`
}

export function Figures({ totals }) {
  const { purchased, allocated, held = 0, available, backordered = 0 } = totals
  return html`<dl class="figures">
    <div><dt>Purchased</dt><dd>${purchased}</dd></div>
    <div><dt>Allocated</dt><dd>${allocated}</dd></div>
    <div><dt>Held</dt><dd>${held}</dd></div>
    <div><dt>Available</dt><dd>${available}</dd></div>
    <div><dt>Backordered</dt><dd>${backordered}</dd></div>
  </dl>`
}

export function Legend() {
  return html`<p class="legend" aria-hidden="true">
    <span><i class="segment allocated"></i> allocated</span>
    <span><i class="segment held"></i> held</span>
    <span><i class="segment available"></i> available</span>
    <span><i class="segment backordered"></i> backordered</span>
  </p>`
}
