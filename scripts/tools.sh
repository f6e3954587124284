#!/usr/bin/env bash
# Installs the programs the tests and benchmarks need, once, into a tools folder outside
# the checkout (so a fresh clone on the same machine reuses them), and prints their paths.
#   scripts/tools.sh s3s-fs   -> path of the s3s-fs binary (a real S3-protocol server)
#   scripts/tools.sh rustus   -> path of the rustus binary (a tus server, beside mediabox in make bench)
#   scripts/tools.sh tus-js-client -> a node_modules folder holding tus-js-client (for NODE_PATH)
#   scripts/tools.sh tuspy    -> a python with tuspy installed
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
  *)
    echo "usage: $0 s3s-fs|rustus|tus-js-client|tuspy" >&2
    exit 2
    ;;
esac
