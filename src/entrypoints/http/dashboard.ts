import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
}

type File = Readonly<{ type: string; body: Buffer }>

/** The browser modules the page imports by bare name (its import map), served from our own packages. */
const vendor: Record<string, string> = {
  'preact.mjs': import.meta.resolve('preact'),
  'hooks.mjs': import.meta.resolve('preact/hooks'),
  'htm.mjs': import.meta.resolve('htm'),
}

/**
 * The operator dashboard at `/` (and `/dashboard/`): a page of plain ES modules, nothing built. Its files
 * are read once, when the app starts, and never by a path a request made up. They need no API key: the
 * page asks for one when the API answers 401.
 */
export function dashboardRoutes(): FastifyPluginAsync {
  return async (app) => {
    const folder = new URL('../dashboard/', import.meta.url)
    const files = new Map<string, File>()
    for (const name of await readdir(folder)) {
      const type = types[extname(name)]
      if (type) files.set(name, { type, body: await readFile(new URL(name, folder)) })
    }
    for (const [name, url] of Object.entries(vendor)) {
      files.set(`vendor/${name}`, { type: types['.mjs'] as string, body: await readFile(fileURLToPath(url)) })
    }
    const page = files.get('index.html')
    if (!page) throw new Error('The dashboard has no index.html')

    // The page holds an API key: it runs only our own scripts and talks only to this service.
    const policy = contentSecurityPolicy(page.body.toString('utf8'))
    const send = (reply: FastifyReply, file: File) =>
      reply
        .type(file.type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', policy)
        .send(file.body)
    const hidden = { schema: { hide: true } }
    app.get('/', hidden, async (_request, reply) => send(reply, page))
    app.get('/dashboard/', hidden, async (_request, reply) => send(reply, page))
    app.get('/dashboard/*', hidden, async (request, reply) => {
      const file = files.get((request.params as { '*': string })['*'])
      return file ? send(reply, file) : reply.callNotFound()
    })
  }
}

/** Scripts from this origin and the page's inline import map (by its hash), nothing else from anywhere. */
function contentSecurityPolicy(html: string): string {
  const inline = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map(
    ([, body]) =>
      `'sha256-${createHash('sha256')
        .update(body ?? '')
        .digest('base64')}'`,
  )
  return [
    "default-src 'self'",
    `script-src 'self' ${inline.join(' ')}`,
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
}
