import { access } from 'node:fs/promises'
import { type Browser, chromium } from 'playwright-core'

/** Debian's Chromium (`apt-get install chromium`); the tests never download a browser of their own. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Debian's Chromium, headless, or `null` when it is not installed on a developer machine (the caller
 * skips, with one line saying so). Under `CI` a missing browser is a failure.
 */
export async function launchChromium(): Promise<Browser | null> {
  try {
    await access(chromiumPath)
  } catch {
    if (process.env.CI) throw new Error(`Chromium is required under CI but ${chromiumPath} is missing`)
    console.warn(`Skipping the browser tests: no Chromium at ${chromiumPath} (apt-get install chromium)`)
    return null
  }
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  })
}
