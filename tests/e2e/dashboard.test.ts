import { fileURLToPath } from 'node:url'
import type { Browser, Page, Route } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { accessibilityViolations } from '../support/accessibility.ts'
import { launchChromium } from '../support/browser.ts'
import { type Client, client, pgliteMode, type RunningService, type Storage, startService } from './support.ts'

const docs = (name: string) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url))
const patiently = { timeout: 20_000, interval: 50 }

describe('the operator dashboard in Chromium', () => {
  let browser: Browser | null
  let storage: Storage
  let service: RunningService
  let api: Client
  let page: Page
  /** Console errors and uncaught exceptions of the page, as they happen. */
  const problems: string[] = []

  beforeAll(async () => {
    browser = await launchChromium()
    if (!browser) return
    storage = await pgliteMode.prepare()
    // A busy machine (two cores, a browser and the service) may take long to start it.
    service = await startService(storage.env, 90_000)
    api = client(service.url)
    // A fixed clock and time zone, so that the screenshots change only when the page does.
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', locale: 'en-GB' })
    await page.clock.setFixedTime(new Date('2026-12-01T09:00:00Z'))
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`${message.text()} (${message.location().url})`)
    })
    page.on('pageerror', (error) => problems.push(String(error)))
  }, 150_000)

  afterAll(async () => {
    await browser?.close()
    const code = await service?.stop()
    await storage?.drop()
    if (service) expect(code, service.output()).toBe(0)
  })

  const post = async (path: string, body: object) => {
    const answer = await api.post(path, body)
    expect(answer.status, JSON.stringify(answer.body)).toBeLessThan(300)
  }
  const text = async (selector: string) => (await page.locator(selector).allTextContents()).join(' ')

  it('opens on a fresh service with no console error, then shows the stock of every sku as it arrives', async (ctx) => {
    if (!browser) return ctx.skip()
    await page.goto(service.url)
    await page.getByText('No stock yet: add a batch below.').waitFor()
    await page.locator('.state-live').waitFor()
    expect(problems).toEqual([])

    await post('/batches', { ref: 'table-shelf', sku: 'SMALL-TABLE', qty: 10, eta: null })
    await post('/batches', { ref: 'table-ship', sku: 'SMALL-TABLE', qty: 30, eta: '2027-02-01' })
    await post('/batches', { ref: 'lamp-shelf', sku: 'BLUE-LAMP', qty: 8, eta: null })
    await post('/batches', { ref: 'chair-ship', sku: 'RED-CHAIR', qty: 12, eta: '2027-03-15' })
    await post('/allocations', { orderid: 'order-1', sku: 'BLUE-LAMP', qty: 6 })
    await post('/allocations', { orderid: 'order-2', sku: 'BLUE-LAMP', qty: 5, backorder: true })
    await post('/allocations', { orderid: 'order-3', sku: 'RED-CHAIR', qty: 4, holdSeconds: 3600 })
    await post('/allocations', { orderid: 'order-3', sku: 'BLUE-LAMP', qty: 3, backorder: true })

    // No reload: the page follows the events.
    const skus = () => page.locator('.stock li').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-sku')))
    await vi.waitFor(async () => expect(await skus()).toEqual(['BLUE-LAMP', 'RED-CHAIR', 'SMALL-TABLE']), patiently)
    await vi.waitFor(
      async () =>
        expect(await page.locator('[data-sku="BLUE-LAMP"] .bar').getAttribute('aria-label')).toBe(
          'BLUE-LAMP: purchased 8, allocated 6, available 2, backordered 8',
        ),
      patiently,
    )
    await page.getByLabel('Filter skus').fill('chair')
    await vi.waitFor(async () => expect(await page.locator('.stock li').count()).toBe(1), patiently)
    await page.getByLabel('Filter skus').fill('')
    // The bars may be up to date before the feed shows every event: the screenshot waits for all ten.
    await vi.waitFor(async () => expect(await page.locator('.feed li').count()).toBe(10), patiently)
    await page.screenshot({ path: docs('dashboard-stock.png'), fullPage: true })
    expect(await accessibilityViolations(page)).toEqual([])
    expect(problems).toEqual([])
  })

  it("adds a batch through the form and shows it on the sku's eta timeline", async (ctx) => {
    if (!browser) return ctx.skip()
    await page.getByRole('link', { name: 'SMALL-TABLE' }).click()
    await page.getByRole('heading', { name: 'SMALL-TABLE', level: 1 }).waitFor()
    await page.getByText('No order lines for SMALL-TABLE yet.').waitFor()
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'Add a batch' }) })
    await form.getByLabel('Reference').fill('table-late')
    await form.getByLabel('Quantity').fill('15')
    await form.getByLabel('Arrives (empty: in the warehouse)').fill('2027-04-20')
    await form.getByRole('button', { name: 'Add batch' }).click()
    const moment = page.locator('.moment', { has: page.locator('[data-ref="table-late"]') })
    await moment.waitFor()
    expect(await moment.locator('.when').textContent()).toContain('2027-04-20')
    expect(await text('.timeline .when')).toMatch(/Warehouse · now.*2027-02-01.*2027-04-20/)
  })

  it('shows an allocation made through the API as it happens: the event in the feed and the bars', async (ctx) => {
    if (!browser) return ctx.skip()
    const bar = page.locator('[data-ref="table-shelf"] .bar')
    expect(await bar.getAttribute('aria-label')).toBe('Batch table-shelf: purchased 10, allocated 0, available 10')
    await post('/allocations', { orderid: 'order-4', sku: 'SMALL-TABLE', qty: 7 })
    await page.locator('.feed li[data-type="Allocated"]', { hasText: 'order-4' }).waitFor()
    await vi.waitFor(
      async () =>
        expect(await bar.getAttribute('aria-label')).toBe('Batch table-shelf: purchased 10, allocated 7, available 3'),
      patiently,
    )
    expect(await text('[data-ref="table-shelf"] .on-batch')).toContain('order-4')
    expect(await text('.lines')).toContain('order-4')
  })

  it('answers a promise in a sentence and marks the promised batch on the timeline', async (ctx) => {
    if (!browser) return ctx.skip()
    await page.getByLabel('Quantity a customer wants').fill('12')
    await page.getByRole('button', { name: 'Ask for a promise' }).click()
    await page.locator('.promise').waitFor()
    expect(await text('.promise')).toBe(
      '12 × SMALL-TABLE arrives by 2027-02-01, with batch table-ship. table-shelf has only 3.',
    )
    expect(await page.locator('.batch.promised').getAttribute('data-ref')).toBe('table-ship')
    expect(await text('[data-ref="table-shelf"] .reason')).toBe('3 available: too few for 12')
    await page.screenshot({ path: docs('dashboard-sku.png'), fullPage: true })
    expect(await accessibilityViolations(page)).toEqual([])
  })

  it('words a quantity error for its field, clears the last promise under it, and says when the service is unreachable', async (ctx) => {
    if (!browser) return ctx.skip()
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'Promise' }) })
    await form.getByLabel('Quantity a customer wants').fill('twelve')
    await form.getByRole('button', { name: 'Ask for a promise' }).click()
    await page.locator('#promise-qty-error').waitFor()
    expect(await text('#promise-qty-error')).toBe('Quantity a customer wants must be a whole number')
    expect(await page.locator('.promise').count()).toBe(0)
    expect(await page.locator('.batch.promised').count()).toBe(0)

    const availability = '**/products/*/availability?*'
    await page.route(availability, (route) => route.abort('connectionrefused'))
    try {
      await form.getByLabel('Quantity a customer wants').fill('3')
      await form.getByRole('button', { name: 'Ask for a promise' }).click()
      await form.getByText('The service cannot be reached', { exact: false }).waitFor()
    } finally {
      await page.unroute(availability)
    }
  })

  it("shows the API's sentence next to the field it names", async (ctx) => {
    if (!browser) return ctx.skip()
    const form = page.locator('form', { has: page.getByRole('heading', { name: 'Allocate' }) })
    await form.getByLabel('Order id').fill('order-5')
    await form.getByLabel('Quantity').fill('500')
    await form.getByRole('button', { name: 'Allocate' }).click()
    const error = page.locator('#allocate-qty-error')
    await error.waitFor()
    expect(await error.textContent()).toMatch(/order-5.*SMALL-TABLE|SMALL-TABLE.*order-5/)
    expect(await form.getByLabel('Quantity').getAttribute('aria-invalid')).toBe('true')

    await form.getByLabel('Wait for stock (backorder)').check()
    await form.getByRole('button', { name: 'Allocate' }).click()
    await form.locator('.done', { hasText: 'order-5 waits for stock (backordered)' }).waitFor()
  })

  it("changes a batch's quantity after saying which lines will move", async (ctx) => {
    if (!browser) return ctx.skip()
    await page.getByRole('button', { name: 'Change batch table-shelf' }).click()
    const form = page.locator('form.change')
    await form.getByLabel('Purchased quantity').fill('5')
    await form.getByRole('button', { name: 'Review the change' }).click()
    await form.locator('.confirm').waitFor()
    expect(await text('form.change .confirm')).toContain(
      'Setting table-shelf to 5 moves 1 line(s): order-4 (7) moves to table-ship.',
    )
    expect(await api.get('/batches/table-shelf')).toMatchObject({ body: { purchased: 10 } })
    await form.getByRole('button', { name: 'Confirm the change' }).click()
    await page.locator('.done', { hasText: 'Batch table-shelf changed: 1 line(s) moved.' }).waitFor()
    await vi.waitFor(
      async () => expect(await text('[data-ref="table-ship"] .on-batch')).toContain('order-4'),
      patiently,
    )
  })

  it("takes a date typed for a warehouse batch over its 'in the warehouse' box", async (ctx) => {
    if (!browser) return ctx.skip()
    await page.getByRole('button', { name: 'Change batch table-shelf' }).click()
    const form = page.locator('form.change')
    const arrived = form.getByLabel('In the warehouse (arrived)')
    expect(await arrived.isChecked()).toBe(true)
    await form.getByLabel('Arrives', { exact: true }).fill('2027-01-10')
    expect(await arrived.isChecked()).toBe(false)
    await form.getByRole('button', { name: 'Review the change' }).click()
    await form.locator('.confirm').waitFor()
    expect(await text('form.change .confirm')).toContain('table-shelf arrives 2027-01-10')
    await form.getByRole('button', { name: 'Cancel' }).click()
    await form.waitFor({ state: 'detached' })
  })

  it('looks an order up, follows it live and cancels its lines', async (ctx) => {
    if (!browser) return ctx.skip()
    await page.getByRole('link', { name: 'Orders' }).click()
    await page.getByLabel('Order id').fill('order-3')
    await page.getByRole('button', { name: 'Look up' }).click()
    const line = (sku: string) => page.locator(`tr[data-line="order-3/${sku}"]`)
    await line('RED-CHAIR').waitFor()
    expect(await line('RED-CHAIR').locator('td').allTextContents()).toEqual(
      expect.arrayContaining(['RED-CHAIR', '4', 'held', 'chair-ship', '2027-03-15']),
    )
    expect(await line('RED-CHAIR').locator('time').getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/)
    expect(await line('BLUE-LAMP').locator('td').allTextContents()).toEqual(
      expect.arrayContaining(['BLUE-LAMP', '3', 'backordered', '—', 'when stock comes']),
    )

    const cancel = async (sku: string) => {
      await line(sku)
        .getByRole('button', { name: `Cancel line order-3 ${sku}` })
        .click()
      await line(sku).getByRole('button', { name: 'Yes, cancel the line' }).click()
    }
    await cancel('RED-CHAIR')
    await page.locator('.feed li[data-type="HoldReleased"]', { hasText: 'order-3' }).waitFor()
    await line('RED-CHAIR').waitFor({ state: 'detached' })
    await post('/allocations', { orderid: 'order-3', sku: 'SMALL-TABLE', qty: 2 })
    await line('SMALL-TABLE').waitFor()
    expect(await line('SMALL-TABLE').locator('td').allTextContents()).toEqual(
      expect.arrayContaining(['SMALL-TABLE', '2', 'allocated', 'table-shelf', 'now (warehouse)']),
    )
    await page.screenshot({ path: docs('dashboard-order.png'), fullPage: true })
    expect(await accessibilityViolations(page)).toEqual([])

    // A new eta of a batch serving one of its lines is that line's new arrival date.
    expect((await api.patch('/batches/table-shelf', { eta: '2027-01-10' })).status).toBe(200)
    await vi.waitFor(
      async () => expect(await line('SMALL-TABLE').locator('td').allTextContents()).toContain('2027-01-10'),
      patiently,
    )

    // With the keyboard alone: Enter on Cancel, then Enter on the question, which has the focus.
    await line('BLUE-LAMP').getByRole('button', { name: 'Cancel line order-3 BLUE-LAMP' }).focus()
    await page.keyboard.press('Enter')
    const yes = line('BLUE-LAMP').getByRole('button', { name: 'Yes, cancel the line' })
    await vi.waitFor(
      async () => expect(await yes.evaluate((b) => b === b.ownerDocument.activeElement)).toBe(true),
      patiently,
    )
    await page.keyboard.press('Enter')
    await line('BLUE-LAMP').waitFor({ state: 'detached' })
    await cancel('SMALL-TABLE')
    await page.locator('#lookup-orderid-error').waitFor()
    expect(await text('#lookup-orderid-error')).toContain('order-3')
    expect((await api.get('/orders/order-3')).status).toBe(404)
  })

  it('says a line the change leaves on its batch stays there, and does not count it as moved', async (ctx) => {
    if (!browser) return ctx.skip()
    await post('/batches', { ref: 'lamp-1', sku: 'GREEN-LAMP', qty: 6, eta: null })
    await post('/allocations', { orderid: 'lamp-x', sku: 'GREEN-LAMP', qty: 2 })
    await post('/allocations', { orderid: 'lamp-y', sku: 'GREEN-LAMP', qty: 3 })
    await post('/allocations', { orderid: 'lamp-z', sku: 'GREEN-LAMP', qty: 1 })
    // The service keeps such a line off its answers now; an older one listed it as moved to its own batch.
    const stays = { orderid: 'lamp-z', sku: 'GREEN-LAMP', qty: 1, status: 'allocated', batchref: 'lamp-1' }
    const listing = async (route: Route, list: 'moved') => {
      const answer = await route.fetch()
      const body = await answer.json()
      await route.fulfill({ response: answer, json: { ...body, [list]: [...body[list], stays] } })
    }
    await page.route('**/batches/lamp-1/moves?*', (route) => listing(route, 'moved'))
    await page.route('**/batches/lamp-1', (route) => listing(route, 'moved'))
    try {
      await page.goto(`${service.url}/#/products/GREEN-LAMP`)
      await page.getByRole('button', { name: 'Change batch lamp-1' }).click()
      const form = page.locator('form.change')
      await form.getByLabel('Purchased quantity').fill('4')
      await form.getByRole('button', { name: 'Review the change' }).click()
      await form.locator('.confirm').waitFor()
      expect(await text('form.change .confirm')).toContain(
        'Setting lamp-1 to 4 moves 1 line(s): lamp-y (3) waits for stock as a backorder; lamp-z (1) stays on lamp-1.',
      )
      await form.getByRole('button', { name: 'Confirm the change' }).click()
      await page.locator('.done', { hasText: 'Batch lamp-1 changed: 1 line(s) moved.' }).waitFor()
    } finally {
      await page.unrouteAll()
    }
  })

  it('says plainly when a sku has more lines than the API lists at once, and reads on when asked', async (ctx) => {
    if (!browser) return ctx.skip()
    await post('/batches', { ref: 'sofa-shelf', sku: 'GREY-SOFA', qty: 600, eta: null })
    await post('/batches', { ref: 'sofa-ship', sku: 'GREY-SOFA', qty: 600, eta: '2027-05-01' })
    // 1,001 lines, more than the 1,000 the API lists at once: the first 600 fill the shelf, 401 the ship.
    let next = 0
    const allocate = async () => {
      for (let i = next++; i < 1001; i = next++)
        await post('/allocations', { orderid: `sofa-${i}`, sku: 'GREY-SOFA', qty: 1 })
    }
    await Promise.all(Array.from({ length: 8 }, allocate))
    await page.goto(`${service.url}/#/products/GREY-SOFA`)
    await page.locator('.notice').waitFor()
    expect(await text('.notice')).toContain('this page shows its first 1,000, which hold 1,000 of the 1,001 allocated.')
    expect(await text('.lines caption')).toBe('Lines on batches (allocated or held): the first 1,000 only')
    expect(await text('[data-ref="sofa-ship"] .on-batch')).toMatch(/and at least \d+ more$/)
    expect(await text('[data-ref="sofa-shelf"] .on-batch')).toMatch(/and 594 more$/)

    const listed = () =>
      page.locator('.lines tr[data-line]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-line')))
    const readOn = page.getByRole('button', { name: 'Show the next 1,000 lines' })
    expect(await readOn.count()).toBe(1)
    expect(await listed()).toHaveLength(1000)
    await readOn.click()
    await vi.waitFor(async () => expect(new Set(await listed()).size).toBe(1001), patiently)
    expect(await listed()).toHaveLength(1001)
    expect(await page.locator('.notice').count()).toBe(0)
    expect(await readOn.count()).toBe(0)
    expect(await text('.lines caption')).toBe('Lines on batches (allocated or held): 1,001')
    expect(await text('[data-ref="sofa-ship"] .on-batch')).toMatch(/and 395 more$/)
    // An event of the sku reloads it with the pages shown, not the first one alone.
    await post('/allocations', { orderid: 'sofa-1001', sku: 'GREY-SOFA', qty: 1 })
    await vi.waitFor(async () => expect(await listed()).toHaveLength(1002), patiently)
    expect(await page.locator('.notice').count()).toBe(0)
    expect(await readOn.count()).toBe(0)

    // A new eta's review names every line on the batch, those past the first page included.
    await page.getByRole('button', { name: 'Change batch sofa-ship' }).click()
    const form = page.locator('form.change')
    await form.getByLabel('Arrives', { exact: true }).fill('2027-06-01')
    await form.getByRole('button', { name: 'Review the change' }).click()
    await form.locator('.confirm').waitFor()
    const review = await text('form.change .confirm')
    expect(review).toContain('sofa-ship arrives 2027-06-01; 402 line(s) on it get the new date: sofa-')
    expect(review).not.toContain('not listed')
    await form.getByRole('button', { name: 'Cancel' }).click()
    await form.waitFor({ state: 'detached' })
  })

  it('fits a 375 px wide screen: no page scrolls sideways, a wide table scrolls in its own box', async (ctx) => {
    if (!browser) return ctx.skip()
    const narrow = await browser.newPage({ viewport: { width: 375, height: 800 } })
    try {
      for (const [hash, shown] of [
        ['#/', '.stock li'],
        ['#/products/SMALL-TABLE', '.lines'],
        ['#/orders/order-1', '.lines'],
      ] as const) {
        await narrow.goto(`${service.url}/${hash}`)
        await narrow.locator(shown).first().waitFor()
        expect(await narrow.locator('html').evaluate((root) => root.scrollWidth), hash).toBeLessThanOrEqual(375)
      }
      const table = narrow.locator('.table-scroll')
      expect(await table.evaluate((box) => box.scrollWidth > box.clientWidth)).toBe(true)
    } finally {
      await narrow.close()
    }
  })

  it('asks for an API key once when the service wants one and keeps it for the tab; its files stay open', async (ctx) => {
    if (!browser) return ctx.skip()
    const secret = 'operator-secret-0123456789'
    const reader = 'viewer-secret-0123456789'
    const keyed = await pgliteMode.prepare()
    const guarded = await startService({ ...keyed.env, API_KEYS: `ops:write:${secret},view:read:${reader}` }, 90_000)
    const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    const logged: string[] = []
    tab.on('console', (message) => {
      if (message.type() === 'error') logged.push(message.text())
    })
    tab.on('pageerror', (error) => logged.push(String(error)))
    try {
      for (const file of ['/', '/dashboard/', '/dashboard/app.js', '/dashboard/vendor/preact.mjs']) {
        const answer = await fetch(`${guarded.url}${file}`)
        expect(answer.status, file).toBe(200)
        // The page holds a key: only its own scripts run (the console would report anything refused).
        expect(answer.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-/)
      }
      expect((await fetch(`${guarded.url}/products`)).status).toBe(401)

      await tab.goto(guarded.url)
      const dialog = tab.getByRole('dialog', { name: 'API key' })
      await dialog.waitFor()
      expect(await accessibilityViolations(tab)).toEqual([])
      await dialog.getByLabel('Key').fill('not-the-secret-0123456789')
      await dialog.getByRole('button', { name: 'Use this key' }).click()
      await dialog.getByText('The service refused that key.').waitFor()
      // Dismissed, the page waits for a key, and offers to take one; given later, the events follow again.
      await tab.keyboard.press('Escape')
      await tab.locator('.state-needs-a-key').waitFor()
      await tab.getByRole('button', { name: 'Give a key' }).waitFor()
      await tab.goto(`${guarded.url}/#/products/OAK-DESK`)
      await dialog.getByLabel('Key').fill(reader)
      await dialog.getByRole('button', { name: 'Use this key' }).click()
      await tab.locator('.state-live').waitFor()
      await tab.getByRole('link', { name: 'Stock' }).click()
      await tab.getByText('No stock yet: add a batch below.').waitFor()
      expect(await tab.evaluate(() => sessionStorage.getItem('allocation.apiKey'))).toBe(reader)

      // A read key's write is refused (403): the dialog offers another key, and the write goes through with it.
      const form = tab.locator('form', { has: tab.getByRole('heading', { name: 'Add a batch' }) })
      await form.getByLabel('Reference').fill('desk-shelf')
      await form.getByLabel('Sku').fill('OAK-DESK')
      await form.getByLabel('Quantity').fill('3')
      await form.getByRole('button', { name: 'Add batch' }).click()
      await dialog.getByText('That key may only read; this needs a write key.').waitFor()
      await dialog.getByLabel('Key').fill(secret)
      await dialog.getByRole('button', { name: 'Use this key' }).click()
      await form.locator('.done', { hasText: 'Batch desk-shelf added' }).waitFor()
      await tab.locator('[data-sku="OAK-DESK"]').waitFor()
      expect(await tab.evaluate(() => sessionStorage.getItem('allocation.apiKey'))).toBe(secret)
      // The key can be changed whenever the operator likes.
      await tab.getByRole('button', { name: 'Change key' }).click()
      await dialog.getByRole('button', { name: 'Cancel' }).click()
      expect(await accessibilityViolations(tab)).toEqual([])

      // The same tab keeps the key across a reload and is not asked again.
      await tab.reload()
      await tab.locator('[data-sku="OAK-DESK"]').waitFor()
      await tab.locator('.state-live').waitFor()
      expect(await tab.locator('dialog[open]').count()).toBe(0)
      // The browser logs each 401 and 403 answer, and the 404s of the unknown sku's page; nothing else.
      const expected = /status of (401 \(Unauthorized|403 \(Forbidden|404 \(Not Found)\)/
      expect(logged.filter((line) => !expected.test(line))).toEqual([])
    } finally {
      await tab.close()
      expect(await guarded.stop(), guarded.output()).toBe(0)
      await keyed.drop()
    }
  })

  it('takes an address that is not valid percent-encoding as typed, and says there is no such sku', async (ctx) => {
    if (!browser) return ctx.skip()
    await page.goto(`${service.url}/#/products/100%`)
    await page.getByRole('heading', { name: '100%', exact: true }).waitFor()
    await page.locator('[role="alert"]').waitFor()
  })

  it('logged no console error but the refusals it asked for', async (ctx) => {
    if (!browser) return ctx.skip()
    // The browser itself logs each 4xx answer and each request that could not be sent; the refusals and
    // the unreachable service above are the only ones expected.
    const expected = /status of (400 \(Bad Request|409 \(Conflict|404 \(Not Found)\)|net::ERR_CONNECTION_REFUSED/
    const unexpected = problems.filter((p) => !expected.test(p))
    expect(unexpected).toEqual([])
  })
})
