import { useState } from 'preact/hooks'
import { api } from './api.js'
import { Field, FormError, number, useSubmit } from './forms.js'
import { html } from './html.js'

const outcome = (line) =>
  line.status === 'backordered'
    ? `${line.orderid} waits for stock (backordered).`
    : line.status === 'held'
      ? `${line.orderid} is held on ${line.batchref} until ${new Date(line.expiresAt).toLocaleString()}.`
      : `${line.orderid} is allocated to ${line.batchref}${line.eta ? `, arriving ${line.eta}` : ', in the warehouse'}.`

/** Allocates a line of this sku: plainly, waiting for stock if none fits, or held for a checkout. */
export function AllocateForm({ sku }) {
  const [mode, setMode] = useState('allocate')
  const form = useSubmit(async (values, element) => {
    const line = { orderid: values.orderid, sku, qty: number(values.qty) }
    if (mode === 'backorder') line.backorder = true
    if (mode === 'hold') line.holdSeconds = number(values.holdSeconds)
    const answer = await api('POST', '/allocations', line)
    element.reset()
    setMode('allocate')
    return outcome(answer)
  })
  const choice = (value, label) => html`<div class="field check">
    <input id=${`allocate-${value}`} type="radio" name="mode" value=${value} checked=${mode === value} onChange=${() => setMode(value)} />
    <label for=${`allocate-${value}`}>${label}</label>
  </div>`
  return html`<form class="card" aria-labelledby="allocate-title" onSubmit=${form.onSubmit}>
    <h2 id="allocate-title">Allocate</h2>
    <div class="row">
      <${Field} form="allocate" name="orderid" label="Order id" error=${form.error} required />
      <${Field} form="allocate" name="qty" label="Quantity" inputmode="numeric" error=${form.error} required />
    </div>
    <fieldset>
      <legend>When no batch can take it now</legend>
      ${choice('allocate', 'Refuse (out of stock)')} ${choice('backorder', 'Wait for stock (backorder)')}
      ${choice('hold', 'Hold it for a checkout')}
    </fieldset>
    ${
      mode === 'hold' &&
      html`<div class="row"><${Field} form="allocate" name="holdSeconds" label="Hold for (seconds)" defaultValue="900" inputmode="numeric" error=${form.error} required /></div>`
    }
    <${FormError} error=${form.error} fields=${['orderid', 'qty', 'holdSeconds']} />
    <button type="submit" disabled=${form.busy}>Allocate</button>
    ${form.done && html`<p class="done" role="status">${form.done}</p>`}
  </form>`
}
