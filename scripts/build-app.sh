#!/usr/bin/env bash
# The web app's one third-party file: Uppy's prebuilt ES module bundle (Core, Tus and the
# rest of Uppy in one file, no bundler needed), committed under crates/http/app/vendor/
# and embedded in the binary, so that `make run` never needs Node.js.
#   scripts/build-app.sh          fetch it from npm and write it (after changing UPPY)
#   scripts/build-app.sh --check  fail unless the committed copy is exactly npm's (CI, in make lint)
# Package: uppy (npm), MIT licence (vendor/uppy.LICENSE); files: dist/uppy.min.mjs, LICENSE.
set -euo pipefail
cd "$(dirname "$0")/.."
UPPY=6.0.1
VENDOR=crates/http/app/vendor
command -v npm >/dev/null || { echo "build-app.sh needs npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uppy@$UPPY" >/dev/null && tar xzf "uppy-$UPPY.tgz")
if [ "${1:-}" = --check ]; then
  status=0
  for pair in "dist/uppy.min.mjs:uppy.min.mjs" "LICENSE:uppy.LICENSE"; do
    from=${pair%%:*} to=${pair##*:}
    if ! cmp -s "$tmp/package/$from" "$VENDOR/$to"; then
      echo "!!! $VENDOR/$to differs from uppy@$UPPY's $from: run scripts/build-app.sh" >&2
      status=1
    fi
  done
  [ $status = 0 ] && echo "web app vendor files match uppy@$UPPY from npm"
  exit $status
fi
mkdir -p "$VENDOR"
cp "$tmp/package/dist/uppy.min.mjs" "$VENDOR/uppy.min.mjs"
cp "$tmp/package/LICENSE" "$VENDOR/uppy.LICENSE"
echo "wrote $VENDOR/uppy.min.mjs and uppy.LICENSE from uppy@$UPPY"
