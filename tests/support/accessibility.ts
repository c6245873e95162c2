import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import type { Page } from 'playwright-core'

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

type Axe = {
  run(
    context: unknown,
    options: object,
  ): Promise<{ violations: Array<{ id: string; help: string; nodes: Array<{ target: string[] }> }> }>
}

/**
 * What axe-core finds against WCAG 2.1 A and AA (labels, names, contrast, roles) on the page as it is
 * now, one line per rule broken, naming the elements.
 */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  // Evaluated by the browser's debugger protocol: the page's own policy admits no inline script.
  await page.evaluate(await readFile(axePath, 'utf8'))
  return page.evaluate(async () => {
    const { axe, document } = globalThis as unknown as { axe: Axe; document: unknown }
    const { violations } = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    })
    return violations.map((v) => `${v.id} (${v.help}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
  })
}
