#!/usr/bin/env bash
# Upload benchmarks: a release server on SQLite + filesystem in a temporary directory,
# driven over loopback by tests/src/bin/upload-bench.rs. Prints a markdown table and the
# server's peak resident memory after each run (VmHWM), to show that memory does not
# grow with file size. Usage: bench/run.sh [large-bytes]
set -euo pipefail
cd "$(dirname "$0")/.."
LARGE=${1:-1073741824}
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1
DIR=$(mktemp -d /tmp/mediabox-bench.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
export MEDIABOX_DATA_DIR=$DIR MEDIABOX_LISTEN=127.0.0.1:0 MEDIABOX_JWT_SECRET=bench RUST_LOG=warn
./target/release/mediabox serve >"$DIR/out.log" 2>"$DIR/err.log" &
PID=$!
for _ in $(seq 1 100); do grep -q listening "$DIR/out.log" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^mediabox listening on //p' "$DIR/out.log")
TOKEN=$(./target/release/mediabox token --sub bench --org bench --perm media:read,media:write)
rss() { awk '/VmHWM/ {print $2}' "/proc/$PID/status"; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "server: release build, SQLite + filesystem under $DIR"
echo
echo "| run | result | server peak RSS after |"
echo "|---|---|---|"
echo "| start | | $(rss) KiB |"
for size in 67108864 268435456 "$LARGE"; do
  r=$(./target/release/upload-bench large "$URL" "$TOKEN" "$size" 16777216)
  echo "| one file of $((size / 1048576)) MiB in 16 MiB chunks | $r | $(rss) KiB |"
done
r=$(./target/release/upload-bench small "$URL" "$TOKEN" 2000 65536 32)
echo "| 2000 files of 64 KiB, 32 clients | $r | $(rss) KiB |"
