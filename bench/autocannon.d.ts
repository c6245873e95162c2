/** The part of autocannon 9's programmatic API the bench uses (the package ships no types). */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export type Request = {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
  }

  export type RequestSpec = Request & {
    /** Returns the request to send; called before every request on a connection. */
    setupRequest?: (request: Request, context: Record<string, unknown>) => Request
    onResponse?: (status: number, body: string, context: Record<string, unknown>) => void
  }

  export type Options = {
    url: string
    connections?: number
    duration?: number
    amount?: number
    timeout?: number
    sampleInt?: number
    pipelining?: number
    headers?: Record<string, string>
    requests?: RequestSpec[]
  }

  export type Result = {
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    statusCodeStats: Record<string, { count: number }>
  }

  export interface Instance extends EventEmitter {
    stop(): void
    on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): this
    on(event: 'reqError', listener: (error: Error) => void): this
  }

  export default function autocannon(options: Options, done: (error: Error | null, result: Result) => void): Instance
}
