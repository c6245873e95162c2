import { connect, createServer, type Server, type Socket } from 'node:net'

/** What the proxy does with connections: pass bytes, refuse new ones, or accept and never answer. */
export type ProxyMode = 'forward' | 'refuse' | 'hang'

export type TcpProxy = Readonly<{
  /** The port to connect to instead of the target's. */
  port: number
  /** Applies to new connections; `refuse` and `hang` also stop the bytes of open ones. */
  setMode(mode: ProxyMode): void
  /** Closes every open connection at once, both ways, as a network failure or a failover does. */
  cut(): void
  close(): Promise<void>
}>

/** A TCP proxy of the test's own, in front of a server on this machine, that the test can break. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let mode: ProxyMode = 'forward'
  const open = new Set<Socket>()
  const held = new Set<Socket>()
  const server: Server = createServer((client) => {
    client.on('error', () => {})
    if (mode === 'refuse') return void client.destroy()
    open.add(client)
    client.on('close', () => open.delete(client))
    if (mode === 'hang') {
      // Accepted, read, never answered: a server that stopped responding.
      held.add(client)
      client.resume()
      return
    }
    const upstream = connect(targetPort, targetHost)
    upstream.on('error', () => client.destroy())
    client.on('error', () => upstream.destroy())
    open.add(upstream)
    upstream.on('close', () => {
      open.delete(upstream)
      client.destroy()
    })
    client.on('close', () => upstream.destroy())
    client.on('data', (chunk) => {
      if (mode === 'forward') upstream.write(chunk)
    })
    upstream.on('data', (chunk) => {
      if (mode === 'forward') client.write(chunk)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('The proxy has no port')
  const cut = () => {
    for (const socket of [...open, ...held]) socket.destroy()
    held.clear()
  }
  return {
    port: address.port,
    setMode(next) {
      mode = next
    },
    cut,
    async close() {
      cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
