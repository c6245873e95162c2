import { api, path } from './api.js'
import { Field, FormError, number, useSubmit } from './forms.js'
import { html } from './html.js'

/** The availability answer as a shop would say it, with the reason. */
export function promiseSentence({ sku, qty, promise, batches }) {
  if (promise === null) {
    const most = Math.max(0, ...batches.map((b) => b.available))
    return batches.length === 0
      ? `${qty} × ${sku} cannot be promised: the sku has no batch.`
      : `${qty} × ${sku} cannot be promised now: no batch has ${qty} available (the most one batch has is ${most}). It can be backordered.`
  }
  const skipped = batches.slice(
    0,
    batches.findIndex((b) => b.ref === promise.batchref),
  )
  const why = skipped.length > 0 ? ` ${skipped.map((b) => `${b.ref} has only ${b.available}`).join(', ')}.` : ''
  return promise.eta === null
    ? `${qty} × ${sku} ships now, from ${promise.batchref} in the warehouse.${why}`
    : `${qty} × ${sku} arrives by ${promise.eta}, with batch ${promise.batchref}.${why}`
}

export function PromiseForm({ sku, availability, onAnswer }) {
  const form = useSubmit(async (values) => {
    try {
      onAnswer(await api('GET', `${path`/products/${sku}/availability`}?qty=${encodeURIComponent(number(values.qty))}`))
    } catch (error) {
      // The last answer was to another question: it must not stand under this one's error.
      onAnswer(null)
      throw error
    }
  })
  return html`<form class="card" aria-labelledby="promise-title" onSubmit=${form.onSubmit}>
    <h2 id="promise-title">Promise</h2>
    <div class="row">
      <${Field} form="promise" name="qty" label="Quantity a customer wants" inputmode="numeric" error=${form.error} required />
    </div>
    <${FormError} error=${form.error} fields=${['qty']} />
    <button type="submit" disabled=${form.busy}>Ask for a promise</button>
    ${availability && html`<p class="promise" role="status">${promiseSentence(availability)}</p>`}
  </form>`
}
