// Uploads one file to mediabox with tus-js-client, as a browser or Node app would.
// Usage: node tus-js.cjs MODE ENDPOINT TOKEN FILE NAME
//   MODE chunks:   256 KiB PATCHes
//   MODE parallel: parallelUploads: 2 (two partial uploads joined by a final one)
//   MODE resume:   256 KiB PATCHes, aborted past half, then started again (HEAD, resume)
// Prints one JSON line: {"url", "media" (Media-Location), "resumedAt" (resume only)}.
'use strict'
const fs = require('fs')
const tus = require('tus-js-client')

const [mode, endpoint, token, file, name] = process.argv.slice(2)
const data = fs.readFileSync(file)
let resumedAt = null
let aborted = false

const upload = new tus.Upload(data, {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename: name, filetype: 'application/x-claimed' },
  chunkSize: mode === 'parallel' ? Infinity : 256 * 1024,
  parallelUploads: mode === 'parallel' ? 2 : 1,
  retryDelays: [0, 100, 500],
  removeFingerprintOnSuccess: true,
  onAfterResponse(req, res) {
    if (aborted && req.getMethod() === 'HEAD' && resumedAt === null) {
      resumedAt = Number(res.getHeader('Upload-Offset'))
    }
  },
  onProgress(sent, total) {
    if (mode === 'resume' && !aborted && sent >= total / 2) {
      aborted = true
      // Like a dropped network: stop, then start again from what the server kept.
      upload.abort().then(() => upload.start())
    }
  },
  onError(err) {
    console.error(`tus-js-client failed: ${err}`)
    process.exit(1)
  },
  onSuccess({ lastResponse }) {
    console.log(JSON.stringify({ url: upload.url, media: lastResponse.getHeader('Media-Location'), resumedAt }))
  },
})
upload.start()
