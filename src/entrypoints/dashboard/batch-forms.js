import { useEffect, useRef, useState } from 'preact/hooks'
import { api, path } from './api.js'
import { Field, FormError, number, useSubmit } from './forms.js'
import { html } from './html.js'
import { linesOnBatch } from './lines.js'

/** Adds a batch: warehouse stock without an eta, a shipment with one. */
export function AddBatch({ sku = '' }) {
  const form = useSubmit(async (values, element) => {
    const batch = { ref: values.ref, sku: values.sku, qty: number(values.qty), eta: values.eta || null }
    await api('POST', '/batches', batch)
    element.reset()
    return `Batch ${batch.ref} added: ${batch.qty} × ${batch.sku}, ${batch.eta ? `arriving ${batch.eta}` : 'in the warehouse'}.`
  })
  const fields = ['ref', 'sku', 'qty', 'eta']
  return html`<form class="card" aria-labelledby="add-batch-title" onSubmit=${form.onSubmit}>
    <h2 id="add-batch-title">Add a batch</h2>
    <div class="row">
      <${Field} form="add-batch" name="ref" label="Reference" error=${form.error} required />
      <${Field} form="add-batch" name="sku" label="Sku" error=${form.error} defaultValue=${sku || undefined} required />
      <${Field} form="add-batch" name="qty" label="Quantity" error=${form.error} inputmode="numeric" required />
      <${Field} form="add-batch" name="eta" label="Arrives (empty: in the warehouse)" type="date" error=${form.error} />
    </div>
    <${FormError} error=${form.error} fields=${fields} />
    <button type="submit" disabled=${form.busy}>Add batch</button>
    ${form.done && html`<p class="done" role="status">${form.done}</p>`}
  </form>`
}

const moveWords = (m, ref) =>
  m.status === 'backordered'
    ? `${m.orderid} (${m.qty}) waits for stock as a backorder`
    : m.status === 'released'
      ? `${m.orderid} (${m.qty}): its hold is released`
      : `${m.orderid} (${m.qty}) ${m.batchref === ref ? 'stays on' : 'moves to'} ${m.batchref}${m.status === 'held' ? ', still held' : ''}`

/** A line taken off a shrinking batch may fit on it again, once the later lines have left: it did not move. */
const leaving = (moved, ref) => moved.filter((m) => m.batchref !== ref)

/**
 * Changes a batch's quantity or eta. First it says what the change would do, from the API itself: which
 * lines would leave the batch and where each would go, or which lines would get the new date; then the
 * operator confirms.
 */
export function ChangeBatch({ batch, onClose }) {
  const [review, setReview] = useState(null)
  const [arrived, setArrived] = useState(batch.eta === null)
  const element = useRef(null)
  // Opened from a batch's Change button: the keyboard goes straight to the form.
  useEffect(() => element.current?.querySelector('input')?.focus(), [])
  const form = useSubmit(async (values) => {
    const change = {}
    const qty = number(values.qty)
    if (qty !== batch.purchased) change.qty = qty
    const eta = arrived ? null : values.eta || null
    if (eta !== batch.eta) change.eta = eta
    if (Object.keys(change).length === 0)
      throw Object.assign(new Error('Change the quantity or the eta first'), { field: 'qty' })
    if (review) {
      const answer = await api('PATCH', path`/batches/${batch.ref}`, change)
      setReview(null)
      const moved = leaving(answer.moved, batch.ref).length
      onClose(moved === 0 ? `Batch ${batch.ref} changed.` : `Batch ${batch.ref} changed: ${moved} line(s) moved.`)
      return null
    }
    const sentences = []
    if (change.qty !== undefined) {
      const { moved } = await api('GET', `${path`/batches/${batch.ref}/moves`}?qty=${encodeURIComponent(change.qty)}`)
      const count = leaving(moved, batch.ref).length
      sentences.push(
        count === 0
          ? `Setting ${batch.ref} to ${change.qty} moves no line.`
          : `Setting ${batch.ref} to ${change.qty} moves ${count} line(s): ${moved.map((m) => moveWords(m, batch.ref)).join('; ')}.`,
      )
    }
    if (change.eta !== undefined) {
      const { on, more } = await linesOnBatch(batch.sku, batch.ref, batch.allocated)
      const ids = [...on.map((l) => l.orderid), ...(more ? ['others not listed here'] : [])]
      const when = change.eta ? `arrives ${change.eta}` : 'is in the warehouse'
      sentences.push(
        ids.length === 0
          ? `${batch.ref} ${when}; no line is on it.`
          : `${batch.ref} ${when}; ${more ? `at least ${on.length + 1}` : on.length} line(s) on it get the new date: ${ids.join(', ')}.`,
      )
    }
    setReview(sentences)
    return null
  })
  const id = `change-${batch.ref}`
  return html`<form class="card change" ref=${element} aria-labelledby=${`${id}-title`} onSubmit=${form.onSubmit}>
    <h3 id=${`${id}-title`}>Change batch ${batch.ref}</h3>
    <div class="row" onInput=${() => setReview(null)}>
      <${Field} form=${id} name="qty" label="Purchased quantity" defaultValue=${String(batch.purchased)} inputmode="numeric" error=${form.error} required />
      <${Field}
        form=${id}
        name="eta"
        label="Arrives"
        type="date"
        defaultValue=${batch.eta ?? ''}
        error=${form.error}
        onInput=${(event) => event.currentTarget.value && setArrived(false)}
      />
      <div class="field check">
        <input
          id=${`${id}-arrived`}
          name="arrived"
          type="checkbox"
          checked=${arrived}
          onChange=${(event) => setArrived(event.currentTarget.checked)}
        />
        <label for=${`${id}-arrived`}>In the warehouse (arrived)</label>
      </div>
    </div>
    <${FormError} error=${form.error} fields=${['qty', 'eta']} />
    ${review && html`<div class="confirm" role="status"><p><strong>Please confirm.</strong></p>${review.map((s) => html`<p>${s}</p>`)}</div>`}
    <div class="actions">
      <button type="submit" disabled=${form.busy}>${review ? 'Confirm the change' : 'Review the change'}</button>
      <button type="button" class="secondary" onClick=${() => onClose(null)}>Cancel</button>
    </div>
  </form>`
}
