#!/usr/bin/env bash
# Installs the programs the tests and benchmarks need, once, into a tools folder outside
# the checkout (so a fresh clone on the same machine reuses them), and prints their paths.
#   scripts/tools.sh s3s-fs   -> path of the s3s-fs binary (a real S3-protocol server)
#   scripts/tools.sh rustus   -> path of the rustus binary (a tus server, beside mediabox in make bench)
#   scripts/tools.sh tus-js-client -> a node_modules folder holding tus-js-client (for NODE_PATH)
#   scripts/tools.sh tuspy    -> a python with tuspy installed
#   scripts/tools.sh playwright-core -> a node_modules folder holding playwright-core (for NODE_PATH)
#   scripts/tools.sh chromium -> Debian's chromium, installed with apt when missing and running as root
#   scripts/tools.sh ffmpeg   -> Debian's ffmpeg (with ffprobe), installed with apt when missing and running as root
#   scripts/tools.sh schemathesis -> the schemathesis command (PyPI), which fuzzes /openapi.json
#   scripts/tools.sh openapi-python-client -> the openapi-python-client command (PyPI), which
#                             generates a client from /openapi.json (in a venv that also has
#                             what the generated client imports)
set -euo pipefail
TOOLS="${MEDIABOX_TOOLS_DIR:-$HOME/.cache/mediabox-tools}"
mkdir -p "$TOOLS"

case "${1:-}" in
  s3s-fs)
    # Pinned: newer releases need a newer rustc than this machine has.
    bin="$TOOLS/s3s-fs-0.14.1/bin/s3s-fs"
    if [ ! -x "$bin" ]; then
      echo "installing s3s-fs 0.14.1 into $TOOLS (about 2 minutes, once)" >&2
      cargo install s3s-fs@0.14.1 --features binary --locked --root "$TOOLS/s3s-fs-0.14.1" >&2
    fi
    echo "$bin"
    ;;
  rustus)
    bin="$TOOLS/rustus/bin/rustus"
    if [ ! -x "$bin" ]; then
      echo "installing rustus into $TOOLS (several minutes, once)" >&2
      cargo install rustus --locked --root "$TOOLS/rustus" >&2
    fi
    echo "$bin"
    ;;
  tus-js-client)
    # The tus client of Uppy and of most web apps (npm), run by the machine's node.
    command -v npm >/dev/null || { echo "tus-js-client needs node and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
    dir="$TOOLS/tus-js-client-4.3.1"
    if [ ! -f "$dir/node_modules/tus-js-client/package.json" ]; then
      echo "installing tus-js-client 4.3.1 into $TOOLS (seconds, once)" >&2
      mkdir -p "$dir"
      npm install --prefix "$dir" --no-audit --no-fund --silent tus-js-client@4.3.1 >&2
    fi
    echo "$dir/node_modules"
    ;;
  tuspy)
    # The Python tus client (PyPI), in a virtual environment of its own.
    dir="$TOOLS/tuspy-1.1.0"
    if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import tusclient' 2>/dev/null; then
      echo "installing tuspy 1.1.0 into $TOOLS (seconds, once)" >&2
      python3 -m venv "$dir" >&2
      "$dir/bin/pip" install --quiet tuspy==1.1.0 >&2
    fi
    echo "$dir/bin/python"
    ;;
  playwright-core)
    # Drives the browser in the web app's tests; never downloads a browser of its own.
    command -v npm >/dev/null || { echo "playwright-core needs node and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
    dir="$TOOLS/playwright-core-1.64.1"
    if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
      echo "installing playwright-core 1.64.1 into $TOOLS (seconds, once)" >&2
      mkdir -p "$dir"
      npm install --prefix "$dir" --no-audit --no-fund --silent playwright-core@1.64.1 >&2
    fi
    echo "$dir/node_modules"
    ;;
  chromium)
    if [ ! -x /usr/bin/chromium ]; then
      [ "$(id -u)" = 0 ] || { echo "chromium is missing: apt-get install chromium (as root)" >&2; exit 1; }
      echo "installing Debian's chromium with apt (about a minute, once)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium >&2
    fi
    echo /usr/bin/chromium
    ;;
  ffmpeg)
    # Video posters (SPEC 11): the server runs ffmpeg and ffprobe as external programs.
    if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
      [ "$(id -u)" = 0 ] || { echo "ffmpeg is missing: apt-get install ffmpeg (as root)" >&2; exit 1; }
      echo "installing Debian's ffmpeg with apt (about a minute, once)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 ffmpeg >&2
    fi
    command -v ffmpeg
    ;;
  schemathesis)
    # Property-based API testing from the OpenAPI document (issue 24), in its own venv.
    dir="$TOOLS/schemathesis-4.32.5"
    if [ ! -x "$dir/bin/schemathesis" ]; then
      echo "installing schemathesis 4.32.5 into $TOOLS (seconds, once)" >&2
      python3 -m venv "$dir" >&2
      "$dir/bin/pip" install --quiet schemathesis==4.32.5 >&2
    fi
    echo "$dir/bin/schemathesis"
    ;;
  openapi-python-client)
    # A well-kept client generator (PyPI); the venv also holds httpx and attrs, which the
    # generated package imports, so the test runs the client with "$dir/bin/python".
    dir="$TOOLS/openapi-python-client-0.29.1"
    if [ ! -x "$dir/bin/openapi-python-client" ]; then
      echo "installing openapi-python-client 0.29.1 into $TOOLS (seconds, once)" >&2
      python3 -m venv "$dir" >&2
      "$dir/bin/pip" install --quiet openapi-python-client==0.29.1 >&2
    fi
    echo "$dir/bin/openapi-python-client"
    ;;
  *)
    echo "usage: $0 s3s-fs|rustus|tus-js-client|tuspy|playwright-core|chromium|ffmpeg|schemathesis|openapi-python-client" >&2
    exit 2
    ;;
esac
