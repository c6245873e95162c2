import { render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { changeKey, currentKey, keyNeeded, onKeyChange, whenKeyNeeded } from './api.js'
import { followEvents } from './event-stream.js'
import { html } from './html.js'
import { describe, publish } from './live.js'
import { OrderView } from './orders.js'
import { ProductView } from './product.js'
import { StockView } from './stock.js'

/** A part of the address as typed; one that is not valid percent-encoding is taken as it is. */
function decoded(part) {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}

/** `#/`, `#/products/SKU`, `#/orders` or `#/orders/ORDERID`. */
function useRoute() {
  const read = () => location.hash.replace(/^#\/?/, '').split('/').map(decoded)
  const [route, setRoute] = useState(read)
  useEffect(() => {
    const changed = () => setRoute(read())
    addEventListener('hashchange', changed)
    return () => removeEventListener('hashchange', changed)
  }, [])
  return route
}

function Page({ route }) {
  const [section, id] = route
  // Keyed by sku: another sku's page starts afresh (no promise or form carried over).
  if (section === 'products' && id) return html`<${ProductView} key=${id} sku=${id} />`
  if (section === 'orders') return html`<${OrderView} orderid=${id ?? ''} />`
  return html`<${StockView} />`
}

function LiveFeed() {
  const [events, setEvents] = useState([])
  const [state, setState] = useState('connecting')
  useEffect(
    () =>
      followEvents({
        onState: setState,
        onEvents: (arrived) => {
          setEvents((shown) => [...arrived.reverse(), ...shown].slice(0, 50))
          publish(arrived)
        },
      }),
    [],
  )
  return html`<aside class="feed" aria-labelledby="feed-title">
    <h2 id="feed-title">Live events <span class=${`state state-${state.replaceAll(' ', '-')}`}>${state}</span></h2>
    ${events.length === 0 && html`<p class="quiet">Events appear here as they happen.</p>`}
    <ol aria-live="polite" aria-relevant="additions" aria-label="Events, newest first" tabindex="0">
      ${events.map(
        (e) => html`<li key=${e.id} data-type=${e.type}><span class="event-type">${e.type}</span> ${describe(e)}</li>`,
      )}
    </ol>
  </aside>`
}

const why = {
  missing: '',
  refused: 'The service refused that key. ',
  forbidden: 'That key may only read; this needs a write key. ',
  change: '',
}

/**
 * Asks for an API key when the API answers 401 or 403, or when the operator wants to change it; the key
 * is kept in this tab's sessionStorage only.
 */
function KeyDialog() {
  const dialog = useRef(null)
  const [request, setRequest] = useState(null)
  useEffect(() => {
    whenKeyNeeded(
      (reason) =>
        new Promise((resolve) => {
          setRequest({ reason, resolve })
        }),
    )
  }, [])
  useEffect(() => {
    if (request && !dialog.current.open) dialog.current.showModal()
  }, [request])
  const answer = (key) => {
    const asked = request
    setRequest(null)
    dialog.current.close()
    dialog.current.querySelector('form').reset()
    asked?.resolve(key)
  }
  // Escape may close the dialog without a cancel event (Chromium skips it when the dialog opened without
  // the user's doing): a close with the question still open is a dismissal all the same.
  return html`<dialog ref=${dialog} aria-labelledby="key-title" onClose=${() => request && answer(null)}>
    <form
      method="dialog"
      onSubmit=${(event) => {
        event.preventDefault()
        answer(new FormData(event.currentTarget).get('key'))
      }}
    >
      <h2 id="key-title">API key</h2>
      <p>${why[request?.reason] ?? ''}This service needs an API key. It is kept for this tab only.</p>
      <label for="api-key">Key</label>
      <input id="api-key" name="key" type="password" autocomplete="off" required autofocus />
      <div class="actions">
        <button type="submit">Use this key</button>
        <button type="button" class="secondary" onClick=${() => answer(null)}>Cancel</button>
      </div>
    </form>
  </dialog>`
}

/** Once the service wants a key: a way to give one later, or to change it (a write key for a read one). */
function KeyControl() {
  const [, setVersion] = useState(0)
  useEffect(() => onKeyChange(() => setVersion((n) => n + 1)), [])
  if (!keyNeeded()) return null
  return html`<button type="button" class="key" onClick=${changeKey}>${currentKey() ? 'Change key' : 'Give a key'}</button>`
}

function App() {
  const route = useRoute()
  const here = route[0] || 'stock'
  const link = (href, name, label) =>
    html`<a href=${href} aria-current=${here === name ? 'page' : undefined}>${label}</a>`
  return html`<header>
      <p class="title">Allocation</p>
      <nav aria-label="Views">
        ${link('#/', 'stock', 'Stock')} ${link('#/orders', 'orders', 'Orders')} <a href="/docs">API docs</a>
      </nav>
      <${KeyControl} />
    </header>
    <div class="layout">
      <main id="main"><${Page} route=${route} /></main>
      <${LiveFeed} />
    </div>
    <${KeyDialog} />`
}

const root = document.getElementById('app')
root.replaceChildren()
render(html`<${App} />`, root)
