/** An event as a Server-Sent Events reader sees it. */
export type StreamEvent = Readonly<{ id: number; type: string; data: Record<string, unknown> }>

export type StreamReader = Readonly<{
  status: number
  contentType: string | null
  /** Every event received so far, in order. */
  events: StreamEvent[]
  /** Every comment line received so far (without the colon). */
  comments: string[]
  /** Whether the server ended the stream. */
  ended(): boolean
  close(): void
}>

/** Reads `GET url` as a browser's fetch would, parsing the stream into events as it arrives. */
export async function readStream(url: string, headers: Record<string, string> = {}): Promise<StreamReader> {
  const controller = new AbortController()
  const response = await fetch(url, { headers, signal: controller.signal })
  const events: StreamEvent[] = []
  const comments: string[] = []
  let ended = false
  let buffer = ''
  const parse = (block: string) => {
    const fields: Record<string, string> = {}
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comments.push(line.slice(1).trim())
      else {
        const colon = line.indexOf(':')
        if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart()
      }
    }
    if (fields.data !== undefined) {
      events.push({ id: Number(fields.id), type: fields.event ?? 'message', data: JSON.parse(fields.data) })
    }
  }
  void (async () => {
    const body = response.body?.pipeThrough(new TextDecoderStream()).getReader()
    try {
      for (;;) {
        const chunk = await body?.read()
        if (!chunk || chunk.done) break
        buffer += chunk.value
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          parse(buffer.slice(0, end))
          buffer = buffer.slice(end + 2)
        }
      }
    } catch {
      // Aborted by `close`, or the connection was cut.
    } finally {
      ended = true
    }
  })()
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    events,
    comments,
    ended: () => ended,
    close: () => controller.abort(),
  }
}
