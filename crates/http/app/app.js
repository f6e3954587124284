// mediabox's web app (SPEC 13): sign in with a token, events, an event's gallery, uploads
// over tus through Uppy. Plain modules, no build step; it talks only to the public API.
// Everything a user or the server named (titles, file names, problems) is set as text,
// never as HTML.
import { Uppy, Tus } from './vendor/uppy.min.mjs'

const TOKEN_KEY = 'mediabox.token'
const PAGE_SIZE = 50
const main = document.getElementById('main')

// ---- the session -------------------------------------------------------------------

let token = null

/** Takes the token from `#token=...` (then clears it from the address bar) or the tab's
 *  sessionStorage. Never localStorage, never a URL the app requests. */
function loadToken() {
  const m = location.hash.match(/^#token=([^&]+)/)
  if (m) {
    setToken(decodeURIComponent(m[1]))
    history.replaceState(null, '', location.pathname + location.search)
  } else {
    token = sessionStorage.getItem(TOKEN_KEY)
  }
}

function setToken(t) {
  token = t
  if (t) sessionStorage.setItem(TOKEN_KEY, t)
  else sessionStorage.removeItem(TOKEN_KEY)
}

/** The token's claims (not verified here: the server does that). */
function claims() {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')
    return JSON.parse(atob(part))
  } catch {
    return {}
  }
}

function signOut() {
  setToken(null)
  route()
}

// ---- talking to the API ------------------------------------------------------------

class Problem extends Error {
  constructor(body, status) {
    super(body.detail || body.title || `HTTP ${status}`)
    this.body = body
    this.status = status
  }
}

/** A request with the bearer token; applies `X-Token` refreshes, returns to sign-in on
 *  401, and turns an error into a Problem. */
async function api(method, path, { json, headers = {} } = {}) {
  const init = { method, headers: { ...headers, Authorization: `Bearer ${token}` } }
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(json)
  }
  const res = await fetch(path, init)
  const fresh = res.headers.get('X-Token')
  if (fresh) setToken(fresh)
  if (res.status === 401) {
    signOut()
    throw new Problem({ title: 'Unauthorized', detail: 'sign in again' }, 401)
  }
  if (!res.ok) {
    let body = { title: res.statusText, detail: `HTTP ${res.status}` }
    try {
      body = await res.json()
    } catch {
      // not a problem body: keep the status
    }
    throw new Problem(body, res.status)
  }
  return res.status === 204 ? null : res.json()
}

// ---- showing things ----------------------------------------------------------------

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v)
    else if (k === 'text') e.textContent = v
    else e.setAttribute(k, v === true ? '' : v)
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c)
  return e
}

/** Shows a problem as its title and detail (and what a 409 names), never as raw JSON. */
function showError(err) {
  const box = document.getElementById('error')
  const body = err instanceof Problem ? err.body : { title: 'Error', detail: String(err.message || err) }
  document.getElementById('error-title').textContent = body.title || 'Error'
  document.getElementById('error-detail').textContent = body.detail || ''
  const list = document.getElementById('error-list')
  list.replaceChildren(...(body.references || []).map((r) => el('li', { text: r })))
  box.hidden = false
}

function clearError() {
  document.getElementById('error').hidden = true
}

/** Runs an action, showing its problem if it fails. */
async function attempt(action) {
  clearError()
  try {
    return await action()
  } catch (e) {
    showError(e)
    return undefined
  }
}

// ---- views -------------------------------------------------------------------------

function route() {
  clearError()
  teardown()
  const signedIn = Boolean(token)
  document.getElementById('sign-out').hidden = !signedIn
  document.getElementById('who').textContent = signedIn ? `${claims().sub || ''} · ${org() || ''}` : ''
  if (!signedIn) return signInView()
  const m = location.hash.match(/^#\/event\/(\d+)$/)
  if (m) return eventView(Number(m[1]))
  return eventsView()
}

function org() {
  const c = claims()
  return c.org || Object.keys(c.orgs || {})[0]
}

let cleanups = []
function teardown() {
  for (const c of cleanups) c()
  cleanups = []
}

function signInView() {
  const input = el('textarea', { 'data-test': 'token-input', rows: 4, placeholder: 'Paste a token (mediabox token --sub ... --org ...)' })
  const form = el(
    'form',
    {
      class: 'sign-in',
      onsubmit: (ev) => {
        ev.preventDefault()
        const t = input.value.trim()
        if (!t) return
        setToken(t)
        route()
      },
    },
    el('h1', { text: 'Sign in' }),
    el('p', { text: 'Open the link `make run` prints, or paste a token.' }),
    input,
    el('button', { 'data-test': 'sign-in', type: 'submit', text: 'Sign in' }),
  )
  main.replaceChildren(form)
}

async function eventsView() {
  const list = el('ul', { 'data-test': 'event-list', class: 'events' })
  const more = el('button', { type: 'button', class: 'more', hidden: true, text: 'More events' })
  const title = el('input', { 'data-test': 'new-event-title', placeholder: 'New event title', maxlength: 200, required: true })
  const create = el(
    'form',
    {
      class: 'new-event',
      onsubmit: async (ev) => {
        ev.preventDefault()
        const made = await attempt(() => api('POST', '/api/v2/event/', { json: { title: title.value } }))
        if (made) location.hash = `#/event/${made.id}`
      },
    },
    title,
    el('button', { 'data-test': 'create-event', type: 'submit', text: 'Create event' }),
  )
  main.replaceChildren(el('h1', { text: 'Events' }), create, list, more)
  let next = `/api/v2/event/?page_size=${PAGE_SIZE}`
  const load = async () => {
    const page = await attempt(() => api('GET', next))
    if (!page) return
    for (const e of page.results) {
      list.append(
        el(
          'li',
          { 'data-test': 'event-item', 'data-event-id': e.id, tabindex: 0, onclick: () => (location.hash = `#/event/${e.id}`) },
          el('span', { class: 'title', text: e.title }),
          el('span', { class: 'count', text: e.managers.includes(claims().sub) ? 'manager' : '' }),
        ),
      )
    }
    next = page.next
    more.hidden = !next
  }
  more.addEventListener('click', load)
  await load()
}

async function eventView(id) {
  const event = await attempt(() => api('GET', `/api/v2/event/${id}/`))
  if (!event) {
    // Signed out by a 401: the sign-in view stays.
    if (token) main.replaceChildren(el('a', { href: '#/', text: '← Events' }))
    return
  }
  const manager = event.managers.includes(claims().sub)
  const gallery = el('div', { 'data-test': 'gallery', class: 'gallery' })
  const sentinel = el('div', { class: 'sentinel' })
  const uploads = el('ul', { class: 'uploads' })
  const fileInput = el('input', { 'data-test': 'file-input', type: 'file', multiple: true, accept: 'image/*,video/*' })
  const drop = el(
    'label',
    { class: 'drop' },
    el('span', { text: 'Drop photos here or choose files' }),
    fileInput,
  )
  const removeSelected = el('button', {
    'data-test': 'remove-selected',
    type: 'button',
    hidden: !manager,
    text: 'Remove selected from gallery',
    onclick: () => removeFromGallery(),
  })
  main.replaceChildren(
    el('a', { href: '#/', text: '← Events' }),
    el('h1', { text: event.title }),
    el('p', { class: 'note', text: manager ? 'You manage this event.' : 'Your uploads join the gallery once a manager adds them.' }),
    drop,
    uploads,
    el('div', { class: 'toolbar' }, removeSelected),
    gallery,
    sentinel,
  )

  // The gallery: pages fetched as one scrolls; thumbnails loaded lazily by the browser.
  const shown = new Map()
  let next = `/api/v2/event/${id}/gallery/?page_size=${PAGE_SIZE}`
  let loading = false
  const loadPage = async () => {
    if (!next || loading) return
    loading = true
    const page = await attempt(() => api('GET', next))
    loading = false
    if (!page) return
    for (const m of page.results) addTile(m)
    next = page.next
    if (!next) observer.disconnect()
  }
  const addTile = (m) => {
    if (shown.has(m.id)) return
    const tile = tileOf(m, manager, () => {
      shown.delete(m.id)
      tile.remove()
    })
    shown.set(m.id, tile)
    gallery.append(tile)
  }
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadPage()
  }, { rootMargin: '400px' })
  observer.observe(sentinel)
  cleanups.push(() => observer.disconnect())

  async function removeFromGallery() {
    const ids = [...gallery.querySelectorAll('[data-test=select]:checked')].map((c) => Number(c.dataset.mediaId))
    if (!ids.length) return
    const done = await attempt(() => api('DELETE', `/api/v2/event/${id}/gallery/`, { json: { medias: ids } }))
    if (done === undefined) return
    for (const mid of ids) {
      shown.get(mid)?.remove()
      shown.delete(mid)
    }
  }

  // Uploads: Uppy over tus; each file's row has its progress, pause/resume and retry.
  const uppy = new Uppy({ autoProceed: true, meta: { event: String(id) } })
  const answers = new Map() // upload URL -> what its completing answer said
  uppy.use(Tus, {
    endpoint: '/api/v2/media/tus/',
    headers: () => ({ Authorization: `Bearer ${token}` }),
    retryDelays: [0, 1000, 3000, 5000],
    removeFingerprintOnSuccess: true,
    onAfterResponse: (req, res) => {
      const fresh = res.getHeader('X-Token')
      if (fresh) setToken(fresh)
      const media = res.getHeader('Media-Location')
      if (media) answers.set(req.getURL(), { media, galleryError: res.getHeader('Media-Gallery-Error') })
    },
  })
  cleanups.push(() => uppy.destroy())
  const rows = new Map()
  const rowOf = (file) => {
    if (rows.has(file.id)) return rows.get(file.id)
    const bar = el('progress', { 'data-test': 'upload-progress', max: 100, value: 0, 'aria-valuenow': 0, 'aria-label': file.name })
    const pause = el('button', { type: 'button', text: 'Pause', onclick: () => {
      const paused = uppy.pauseResume(file.id)
      pause.textContent = paused ? 'Resume' : 'Pause'
    } })
    const retry = el('button', { type: 'button', text: 'Retry', hidden: true, onclick: () => {
      retry.hidden = true
      uppy.retryUpload(file.id)
    } })
    const status = el('span', { class: 'status' })
    const row = el('li', { 'data-file-name': file.name }, el('span', { class: 'name', text: file.name }), bar, pause, retry, status)
    uploads.append(row)
    const r = { row, bar, pause, retry, status }
    rows.set(file.id, r)
    return r
  }
  uppy.on('file-added', (file) => rowOf(file))
  uppy.on('upload-progress', (file, progress) => {
    const r = rowOf(file)
    const pct = progress.bytesTotal ? Math.floor((progress.bytesUploaded / progress.bytesTotal) * 100) : 0
    r.bar.value = pct
    r.bar.setAttribute('aria-valuenow', String(pct))
  })
  uppy.on('upload-error', (file, error) => {
    const r = rowOf(file)
    r.retry.hidden = false
    r.status.textContent = `failed: ${error.message}`
    showError(error)
  })
  uppy.on('upload-success', async (file, response) => {
    const r = rowOf(file)
    const said = answers.get(response.uploadURL) || {}
    r.bar.remove()
    r.pause.remove()
    r.retry.remove()
    if (said.galleryError) {
      r.status.textContent = `uploaded, not added to the gallery: ${said.galleryError}`
      r.row.classList.add('warn')
    } else {
      r.status.textContent = 'added'
      r.row.classList.add('done')
    }
    // The gallery is in the order added: a new photo is its last, shown once the pages
    // before it are (scrolling there fetches it otherwise).
    if (said.media && !said.galleryError && !next) {
      const m = await attempt(() => api('GET', said.media))
      if (m) addTile(m)
    }
  })
  fileInput.addEventListener('change', () => {
    for (const f of fileInput.files) {
      try {
        uppy.addFile({ name: f.name, type: f.type, data: f, source: 'file-input' })
      } catch (e) {
        showError(e)
      }
    }
    fileInput.value = ''
  })
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault()
    drop.classList.add('over')
  })
  drop.addEventListener('dragleave', () => drop.classList.remove('over'))
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault()
    drop.classList.remove('over')
    for (const f of ev.dataTransfer.files) uppy.addFile({ name: f.name, type: f.type, data: f, source: 'drop' })
  })

  await loadPage()
}

/** One gallery tile: the thumbnail (never the original), the name as text, a checkbox
 *  for managers, delete, and a larger view on click. */
function tileOf(m, manager, removed) {
  const picture = m.thumbnail
    ? el('img', { src: m.thumbnail, alt: m.filename, loading: 'lazy', decoding: 'async', width: 160, height: 160 })
    : el('div', { class: 'no-thumb', text: m.kind })
  const remove = el('button', {
    'data-test': 'delete-media',
    type: 'button',
    class: 'delete',
    text: 'Delete',
    onclick: (ev) => {
      ev.stopPropagation()
      deleteMedia(m, removed)
    },
  })
  const tile = el(
    'figure',
    { 'data-test': 'gallery-item', 'data-media-id': m.id },
    el('button', { type: 'button', class: 'open', 'aria-label': `Open ${m.filename}`, onclick: () => viewer(m, removed) }, picture),
    el('figcaption', { text: m.filename }),
    manager ? el('input', { 'data-test': 'select', type: 'checkbox', 'data-media-id': m.id, 'aria-label': `Select ${m.filename}` }) : null,
    remove,
  )
  return tile
}

/** Deletes a media (seed 003); a 409 names the products and variants that block it. */
async function deleteMedia(m, removed) {
  if (!window.confirm(`Delete ${m.filename}? This removes the file for everyone.`)) return false
  const done = await attempt(() =>
    api('DELETE', `/rest/api/medias/${m.uuid}`, { headers: { 'X-Organization-Id': m.organization, Accept: 'application/json' } }),
  )
  if (done === undefined) return false
  removed()
  return true
}

/** The larger view: the preview, the original's download, delete. */
function viewer(m, removed) {
  const close = () => box.remove()
  const box = el(
    'div',
    { class: 'viewer', role: 'dialog', 'aria-label': m.filename, onclick: (ev) => ev.target === box && close() },
    el(
      'div',
      { class: 'panel' },
      m.preview ? el('img', { 'data-test': 'preview', src: m.preview, alt: m.filename }) : el('p', { text: 'No preview for this file.' }),
      el('p', { class: 'name', text: m.filename }),
      el('a', { 'data-test': 'download', href: m.file, download: m.filename, text: 'Download original' }),
      el('button', { 'data-test': 'delete-media', type: 'button', text: 'Delete', onclick: async () => {
        if (await deleteMedia(m, removed)) close()
      } }),
      el('button', { type: 'button', text: 'Close', onclick: close }),
    ),
  )
  document.body.append(box)
}

// ---- start -------------------------------------------------------------------------

document.getElementById('sign-out').addEventListener('click', signOut)
document.getElementById('error-close').addEventListener('click', clearError)
window.addEventListener('hashchange', route)
loadToken()
route()
