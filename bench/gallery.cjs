// Opens an event's gallery in the web app, in chromium, as a signed-in tab would, and
// reports when its first thumbnail was on screen and what it requested before any
// scrolling. Usage: node gallery.cjs BASE TOKEN EVENT_ID  (CHROMIUM: the browser's path)
'use strict'
const { chromium } = require('playwright-core')
const [base, token, event] = process.argv.slice(2)
;(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } })
  // Signed in for this tab, as after the link's first visit.
  await ctx.addInitScript((t) => sessionStorage.setItem('mediabox.token', t), token)
  const seen = []
  ctx.on('request', (r) => seen.push(r.url()))
  const page = await ctx.newPage()
  await page.goto(`${base}/app/#/event/${event}`)
  const firstMs = await page.evaluate(() => new Promise((resolve) => {
    const check = () => {
      const img = document.querySelector('[data-test=gallery-item] img')
      if (img && img.complete && img.naturalWidth > 0) resolve(performance.now())
      else requestAnimationFrame(check)
    }
    check()
  }))
  await page.waitForLoadState('networkidle')
  const thumbs = seen.filter((u) => u.includes('variant=thumb')).length
  const pages = seen.filter((u) => u.includes('/gallery/')).length
  const items = await page.locator('[data-test=gallery-item]').count()
  console.log(JSON.stringify({ first_thumbnail_ms: Math.round(firstMs), thumbnails_requested: thumbs, gallery_pages: pages, tiles: items }))
  await browser.close()
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
