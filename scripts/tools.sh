#!/usr/bin/env bash
# Installs the programs the tests and benchmarks need, once, into a tools folder outside
# the checkout (so a fresh clone on the same machine reuses them), and prints their paths.
#   scripts/tools.sh s3s-fs   -> path of the s3s-fs binary (a real S3-protocol server)
#   scripts/tools.sh rustus   -> path of the rustus binary (a tus server, beside mediabox in make bench)
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
  *)
    echo "usage: $0 s3s-fs|rustus" >&2
    exit 2
    ;;
esac
