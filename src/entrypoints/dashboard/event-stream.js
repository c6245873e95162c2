import { authorization, currentKey, needKey, onKeyChange } from './api.js'

/**
 * Follows `GET /events/stream` with `fetch` (an EventSource cannot send the Authorization header),
 * reconnecting after the last event it saw, so it misses none; refused for want of a key, it waits for
 * one. Returns the function that stops it.
 */
export function followEvents({ onEvents, onState }) {
  let lastId = null
  let stopped = false
  let controller = null
  let wake = null
  const ignore = onKeyChange(() => {
    if (currentKey() !== null) wake?.()
  })

  const parse = (block) => {
    const fields = {}
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '')
    }
    if (fields.data === undefined) return null
    lastId = Number(fields.id)
    return { id: lastId, type: fields.event, data: JSON.parse(fields.data) }
  }

  const run = async () => {
    while (!stopped) {
      controller = new AbortController()
      try {
        const key = currentKey()
        const headers = { accept: 'text/event-stream', ...authorization(key) }
        if (lastId !== null) headers['last-event-id'] = String(lastId)
        const response = await fetch('/events/stream', { headers, signal: controller.signal })
        if (response.status === 401) {
          if (await needKey(key)) continue
          onState('needs a key')
          await new Promise((resolve) => {
            wake = resolve
          })
          wake = null
          continue
        }
        if (response.status === 410) {
          // Away so long that the events since were removed for their age: start again from now.
          lastId = null
          continue
        }
        if (!response.ok || !response.body) throw new Error(`The event stream answered ${response.status}`)
        onState('live')
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
        let buffer = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buffer += value.replaceAll('\r\n', '\n')
          const blocks = buffer.split('\n\n')
          buffer = blocks.pop() ?? ''
          const events = blocks.map(parse).filter(Boolean)
          if (events.length > 0) onEvents(events)
        }
      } catch {
        if (stopped) return
      }
      onState('reconnecting')
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  }
  void run()
  return () => {
    stopped = true
    ignore()
    wake?.()
    controller?.abort()
  }
}
