// The web app (SPEC 13) in a real browser: Debian's chromium driven by playwright-core,
// against the real server, as a user would use it. Started by tests/e2e/app.rs with:
//   node app.cjs BASE FILES_DIR SCREENSHOTS_DIR
// and, in the environment, MANAGER_TOKEN (u-1, every permission), GUEST_TOKEN (u-2, may
// upload but manages nothing) and CHROMIUM (the browser's path).
// Each step says what it checks; the first failed assertion fails the run (exit 1).
'use strict'
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { chromium } = require('playwright-core')

const [base, filesDir, shots] = process.argv.slice(2)
const managerToken = process.env.MANAGER_TOKEN
const guestToken = process.env.GUEST_TOKEN
const file = (name) => path.join(filesDir, name)
const requests = []
const dialogs = []

function step(name) {
  console.log(`- ${name}`)
}

async function api(token, method, p, json) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'X-Organization-Id': 'acme' },
    body: json === undefined ? undefined : JSON.stringify(json),
  })
  assert.ok(res.ok, `${method} ${p}: ${res.status} ${await res.clone().text()}`)
  return res.status === 204 ? null : res.json()
}

/** A fresh browser context (a new tab with nothing stored), watching what it requests. */
async function context(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } })
  ctx.on('request', (r) => requests.push(r.url()))
  ctx.on('page', (p) => {
    p.on('dialog', async (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`)
      await (d.type() === 'confirm' ? d.accept() : d.dismiss())
    })
    p.on('pageerror', (e) => console.log(`  page error: ${e.message}`))
  })
  return ctx
}

const items = (page) => page.locator('[data-test=gallery-item]')

;(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  })
  const managerCtx = await context(browser)
  const page = await managerCtx.newPage()

  step('sign in from the link: the fragment is cleared, the token kept for the tab only')
  const first = await page.goto(`${base}/app/#token=${managerToken}`)
  const csp = first.headers()['content-security-policy'] || ''
  await page.locator('[data-test=event-list]').waitFor({ state: 'attached' })
  assert.equal(await page.evaluate(() => location.hash), '')
  // The token kept is the link's or a sliding refresh of it (X-Token): the same user.
  const kept = await page.evaluate(() => sessionStorage.getItem('mediabox.token'))
  assert.equal(JSON.parse(Buffer.from(kept.split('.')[1], 'base64url').toString()).sub, 'u-1')
  const stored = await page.evaluate(() => JSON.stringify(Object.assign({}, localStorage)))
  assert.ok(!stored.includes('eyJ'), `no token in localStorage: ${stored}`)

  step('the Content-Security-Policy allows scripts from this origin only, no inline script, no eval')
  const scriptSrc = (csp.match(/script-src ([^;]*)/) || [])[1] || ''
  assert.equal(scriptSrc.trim(), "'self'", csp)
  assert.ok(!csp.includes('unsafe-eval') && !csp.includes('unsafe-inline'), csp)
  const asset = await page.request.get(`${base}/app/app.js`)
  assert.ok((asset.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'assets carry the policy')
  assert.equal(first.headers()['x-frame-options'], 'DENY')

  step('events are listed a page at a time')
  for (let i = 1; i <= 55; i++) await api(managerToken, 'POST', '/api/v2/event/', { title: `Event ${i}` })
  await page.reload()
  await page.locator('[data-test=event-item]').first().waitFor()
  assert.equal(await page.locator('[data-test=event-item]').count(), 50)
  await page.getByRole('button', { name: 'More events' }).click()
  await page.waitForFunction(() => document.querySelectorAll('[data-test=event-item]').length === 55)
  assert.equal(await page.getByRole('button', { name: 'More events' }).isVisible(), false)
  await page.locator('[data-test=event-item]', { hasText: 'Event 53' }).click()
  await page.locator('h1', { hasText: 'Event 53' }).waitFor()
  await page.goBack()
  await page.locator('[data-test=event-list]').waitFor({ state: 'attached' })

  step('a reload stays signed in; a new tab does not, and signs in with a pasted token')
  await page.reload()
  await page.locator('[data-test=event-list]').waitFor({ state: 'attached' })
  assert.equal(await page.locator('[data-test=token-input]').count(), 0)
  const otherCtx = await context(browser)
  const other = await otherCtx.newPage()
  await other.goto(`${base}/app/`)
  await other.locator('[data-test=token-input]').fill(managerToken)
  await other.locator('[data-test=sign-in]').click()
  await other.locator('[data-test=event-list]').waitFor({ state: 'attached' })
  await otherCtx.close()

  step('create an event: its title is shown as text')
  const title = 'Summer <b>party</b> & <script>alert(1)</script>'
  await page.locator('[data-test=new-event-title]').fill(title)
  await page.locator('[data-test=create-event]').click()
  await page.locator('[data-test=gallery]').waitFor({ state: 'attached' })
  assert.equal(await page.locator('h1').textContent(), title)
  const eventId = Number((await page.evaluate(() => location.hash)).split('/').pop())
  assert.ok(eventId > 0)

  step('upload several photos, one with a hostile name: names are text, the grid shows thumbnails')
  const hostile = '<img src=x onerror=alert(1)>.jpg'
  await page.locator('[data-test=file-input]').setInputFiles([file('beach.jpg'), file('dunes.jpg'), file('harbour.jpg'), file(hostile)])
  await page.waitForFunction(() => document.querySelectorAll('[data-test=gallery-item]').length === 4, null, { timeout: 30000 })
  // The upload list shows the client's name as it is; the gallery the name the server
  // kept (SPEC 2 sanitizes it: `<` and `>` become `_`). Both as text.
  assert.equal(await page.locator('.uploads .name', { hasText: 'onerror' }).textContent(), hostile)
  const names = await page.locator('[data-test=gallery-item] figcaption').allTextContents()
  assert.deepEqual([...names].sort(), ['beach.jpg', 'dunes.jpg', 'harbour.jpg', '_img src=x onerror=alert(1)_.jpg'].sort())
  for (const src of await page.locator('[data-test=gallery-item] img').evaluateAll((imgs) => imgs.map((i) => i.getAttribute('src')))) {
    assert.ok(src.includes('variant=thumb'), `a thumbnail, not the original: ${src}`)
  }
  await page.waitForFunction(() => [...document.querySelectorAll('[data-test=gallery-item] img')].every((i) => i.complete && i.naturalWidth > 0))
  assert.equal(await page.locator('img[src=x]').count(), 0, 'the name became no element')
  const originals = requests.filter((u) => /\/api\/v2\/media\/\d+\/file/.test(u) && !u.includes('variant='))
  assert.deepEqual(originals, [], 'the grid loads no original')
  await page.screenshot({ path: path.join(shots, 'gallery.png') })

  step('the larger view shows the preview and offers the original')
  await page.locator('[data-test=gallery-item] .open').first().click()
  const preview = await page.locator('[data-test=preview]').getAttribute('src')
  assert.ok(preview.includes('variant=preview'), preview)
  const download = await page.locator('[data-test=download]').getAttribute('href')
  assert.ok(download.includes('/file?') && !download.includes('variant='), download)
  await page.locator('.viewer button', { hasText: 'Close' }).click()

  step('a manager selects two photos and removes them from the gallery; the media stay')
  const tiles = items(page)
  const removed = [await tiles.nth(0).getAttribute('data-media-id'), await tiles.nth(1).getAttribute('data-media-id')]
  await tiles.nth(0).locator('[data-test=select]').check()
  await tiles.nth(1).locator('[data-test=select]').check()
  await page.locator('[data-test=remove-selected]').click()
  await page.waitForFunction(() => document.querySelectorAll('[data-test=gallery-item]').length === 2)
  const left = await api(managerToken, 'GET', `/api/v2/event/${eventId}/gallery/`)
  assert.equal(left.count, 2)
  for (const id of removed) await api(managerToken, 'GET', `/api/v2/media/${id}/`)

  step('a delete blocked by a product says which product')
  const blockedId = await items(page).first().getAttribute('data-media-id')
  const blocked = await api(managerToken, 'GET', `/api/v2/media/${blockedId}/`)
  const product = await api(managerToken, 'POST', '/rest/api/products', { name: 'Poster', medias: [`/rest/api/medias/${blocked.uuid}`] })
  await items(page).first().locator('[data-test=delete-media]').click()
  const error = page.locator('[data-test=error]')
  await error.waitFor({ state: 'visible' })
  const said = await error.textContent()
  assert.ok(said.includes(product['@id']), `names ${product['@id']}: ${said}`)
  assert.ok(said.includes('Conflict'), said)
  assert.ok(dialogs.some((d) => d.startsWith('confirm')), 'asked first')
  assert.equal(await items(page).count(), 2, 'nothing was removed')
  await page.screenshot({ path: path.join(shots, 'problem.png') })
  await page.locator('#error-close').click()
  assert.equal(await error.isVisible(), false, 'the error shows only while there is one')

  step('a guest who manages nothing uploads: the media is kept, and they are told why it is not in the gallery')
  const guestCtx = await context(browser)
  const guest = await guestCtx.newPage()
  await guest.goto(`${base}/app/#token=${guestToken}`)
  await guest.locator('[data-test=event-list]').waitFor({ state: 'attached' })
  await guest.evaluate((id) => { location.hash = `#/event/${id}` }, eventId)
  await guest.locator('[data-test=file-input]').waitFor({ state: 'attached' })
  assert.equal(await guest.locator('[data-test=remove-selected]').isVisible(), false)
  await guest.locator('[data-test=file-input]').setInputFiles([file('guest.png')])
  const status = guest.locator('.uploads li', { hasText: 'guest.png' }).locator('.status')
  await guest.waitForFunction((el) => el.textContent.includes('not added'), await status.elementHandle())
  assert.ok((await status.textContent()).includes('403'), await status.textContent())
  assert.equal((await api(managerToken, 'GET', `/api/v2/event/${eventId}/gallery/`)).count, 2)
  await guestCtx.close()

  step('a photo dropped on the page uploads too')
  const dropped = fs.readFileSync(file('guest.png')).toString('base64')
  await page.evaluate((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
    const dt = new DataTransfer()
    dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }))
    document.querySelector('.drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }))
  }, dropped)
  await page.locator('[data-test=gallery-item] figcaption', { hasText: 'dropped.png' }).waitFor({ timeout: 30000 })

  step('a large file shows its progress, pauses and resumes; a reload mid-upload resumes where it stopped')
  const cdp = await managerCtx.newCDPSession(page)
  await cdp.send('Network.enable')
  // About 1.5 MB/s up: the 6 MiB file takes seconds.
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1.5e6 })
  await page.locator('[data-test=file-input]').setInputFiles([file('large.bin')])
  const bar = page.locator('[data-test=upload-progress]')
  await page.waitForFunction(() => Number(document.querySelector('[data-test=upload-progress]')?.getAttribute('aria-valuenow')) >= 15, null, { timeout: 30000 })
  await page.screenshot({ path: path.join(shots, 'upload.png') })
  const before = Number(await bar.getAttribute('aria-valuenow'))
  assert.ok(before >= 15 && before < 100, `progress shown: ${before}`)
  const row = page.locator('.uploads li', { hasText: 'large.bin' })
  const stopped = page.waitForEvent('requestfailed', (r) => r.method() === 'PATCH')
  await row.getByRole('button', { name: 'Pause' }).click()
  await stopped
  const resumed = page.waitForRequest((r) => r.method() === 'PATCH' && Number(r.headers()['upload-offset']) > 0)
  await row.getByRole('button', { name: 'Resume' }).click()
  await resumed
  await page.reload()
  await page.locator('[data-test=file-input]').waitFor({ state: 'attached' })
  const patches = []
  page.on('request', (r) => {
    if (r.method() === 'PATCH') patches.push(Number(r.headers()['upload-offset']))
  })
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
  await page.locator('[data-test=file-input]').setInputFiles([file('large.bin')])
  await page.locator('.uploads li', { hasText: 'large.bin' }).locator('.status', { hasText: 'added' }).waitFor({ timeout: 30000 })
  assert.ok(patches.length > 0 && patches[0] > 0, `resumed past the start: PATCH offsets ${patches}`)
  const bytes = fs.statSync(file('large.bin')).size
  const gallery = await api(managerToken, 'GET', `/api/v2/event/${eventId}/gallery/?page_size=50`)
  assert.ok(gallery.results.some((m) => m.filename === 'large.bin' && m.size === bytes), 'the whole file arrived once')

  step('a token the server refuses returns to sign-in')
  await page.evaluate(() => sessionStorage.setItem('mediabox.token', 'not-a-token'))
  await page.reload()
  await page.locator('[data-test=token-input]').waitFor()

  step('nothing was requested from another host')
  const foreign = requests.filter((u) => !u.startsWith(base) && !u.startsWith('data:') && !u.startsWith('blob:'))
  assert.deepEqual(foreign, [])
  assert.ok(!requests.some((u) => u.includes('eyJ')), 'no token in a requested URL')
  const storedNow = await page.evaluate(() => JSON.stringify(Object.assign({}, localStorage)))
  assert.ok(!storedNow.includes('eyJ'), `no token in localStorage: ${storedNow}`)
  assert.ok(!dialogs.some((d) => d.startsWith('alert')), `no script ran: ${dialogs}`)

  await browser.close()
  console.log('ok')
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
