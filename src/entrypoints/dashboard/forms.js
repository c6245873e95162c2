import { useState } from 'preact/hooks'
import { html } from './html.js'

/**
 * What is wrong with a field, in the form's words: the API's sentence names its own parameter ("qty"),
 * which the operator never typed, so a problem of the input's shape is said with the field's label.
 */
const said = (error, label) =>
  error.problem ? `${label} ${error.problem.replace('must be an integer', 'must be a whole number')}` : error.message

/**
 * A labelled input whose error is the API's sentence, shown next to it and tied to it for screen
 * readers. `error` is the `ApiError` of the form's last attempt, or null.
 */
export function Field({ form, name, label, error, type = 'text', ...input }) {
  const id = `${form}-${name}`
  const mine = error && error.field === name ? said(error, label) : null
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input
      id=${id}
      name=${name}
      type=${type}
      aria-invalid=${mine ? 'true' : undefined}
      aria-describedby=${mine ? `${id}-error` : undefined}
      ...${input}
    />
    ${mine && html`<span class="error" id=${`${id}-error`} role="alert">${mine}</span>`}
  </div>`
}

/** The error no field of the form names, shown under the form. */
export function FormError({ error, fields }) {
  if (!error || fields.includes(error.field)) return null
  return html`<p class="error" role="alert">${error.message}</p>`
}

/**
 * A form's submission: `run(values)` is called with the form's values; `busy` while it runs, `error` when
 * it threw (the API's error), `done` a sentence once it succeeded.
 */
export function useSubmit(run) {
  const [state, setState] = useState({ busy: false, error: null, done: null })
  const onSubmit = async (event) => {
    event.preventDefault()
    const values = Object.fromEntries(new FormData(event.currentTarget))
    setState({ busy: true, error: null, done: null })
    try {
      const done = await run(values, event.currentTarget)
      setState({ busy: false, error: null, done: done ?? null })
    } catch (error) {
      setState({ busy: false, error, done: null })
    }
  }
  return { ...state, onSubmit }
}

/** A whole number typed in a field, or the text as typed so that the API names the problem. */
export const number = (text) => (/^\s*-?\d+\s*$/.test(text ?? '') ? Number(text) : text)
