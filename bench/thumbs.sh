#!/usr/bin/env bash
# Thumbnail benchmark (SPEC 11): the time to make the thumb of a 12-megapixel JPEG (made
# here), as the first request for it on a warm release server (upload done, HTTP, the
# database, reading the original, decoding, encoding, storing and serving all included),
# beside `vipsthumbnail` (libvips, Debian's libvips-tools) on the same file and machine,
# its process start included. Then thumbnails per second for 32 concurrent first
# requests. SQLite, filesystem store, loopback.
# Before and after: the same measurement with the release build of THUMBS_BASELINE_REV
# (default 12db115, the last commit before the image codecs moved out of the domain into
# mediabox-imaging, issue 25), built once into target/bench-baseline/.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${THUMB_RUNS:-15}

if ! command -v vipsthumbnail >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing libvips-tools (vipsthumbnail) from Debian" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvips-tools) >/dev/null 2>&1 || true
  fi
fi
BASE_REV=${THUMBS_BASELINE_REV:-12db115}
BASE_BIN=target/bench-baseline/mediabox-$BASE_REV
if [ ! -x "$BASE_BIN" ]; then
  echo "building mediabox at $BASE_REV (once) for the before/after rows" >&2
  wt=$(mktemp -d /tmp/mediabox-baseline.XXXXXX)
  git worktree add --detach "$wt/src" "$BASE_REV" >/dev/null 2>&1
  # The same target folder: dependencies are built once for both.
  (cd "$wt/src" && CARGO_TARGET_DIR="$OLDPWD/target" cargo build --release --bin mediabox >/dev/null 2>&1)
  mkdir -p target/bench-baseline
  cp target/release/mediabox "$BASE_BIN"
  git worktree remove --force "$wt/src"; rm -rf "$wt"
fi
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1

dir=$(mktemp -d /tmp/mediabox-thumbs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
./target/release/upload-bench make-jpeg "$dir/photo.jpg" 4000 3000
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "input: 4000x3000 JPEG (quality 90, gradients and grain), $(($(wc -c < "$dir/photo.jpg") / 1024)) KiB; target 320x320"
echo

# vipsthumbnail: one process per thumbnail, as a script or a job runner would call it.
if command -v vipsthumbnail >/dev/null 2>&1; then
  vips_ms=()
  for _ in $(seq 1 "$RUNS"); do
    t0=$(date +%s%N)
    vipsthumbnail "$dir/photo.jpg" -s 320x320 -o "$dir/vips-thumb.jpg[Q=82,strip]"
    t1=$(date +%s%N)
    vips_ms+=("$(( (t1 - t0) / 100000 ))")
  done
  # Tenths of a millisecond to milliseconds.
  vips=$(stats "${vips_ms[@]}" | awk '{gsub(/[()]/,""); split($2,r,"-"); printf "%.1f (%.1f-%.1f)", $1/10, r[1]/10, r[2]/10}')
  echo "vipsthumbnail $(vipsthumbnail --version 2>/dev/null | head -n1): $vips ms per thumbnail, median (min-max) of $RUNS"
else
  vips="n/a"
  echo "vipsthumbnail: not installed (run as root, or apt-get install libvips-tools)"
fi

PID=""
# One server of binary $1 on a data folder of its own; sets LINE (upload-bench's JSON) and PEAK.
measure() {
  rm -rf "$dir/data"
  MEDIABOX_DATA_DIR=$dir/data MEDIABOX_LISTEN=127.0.0.1:0 MEDIABOX_JWT_SECRET=bench RUST_LOG=warn \
    "$1" serve >"$dir/out.log" 2>"$dir/err.log" &
  PID=$!
  for _ in $(seq 1 100); do grep -q listening "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^mediabox listening on //p' "$dir/out.log")
  token=$(MEDIABOX_JWT_SECRET=bench "$1" token --sub bench --org bench --perm media:read,media:write)
  LINE=$(./target/release/upload-bench thumbs "$url" "$token" "$dir/photo.jpg" "$RUNS" 32)
  PEAK=$(rss_mib)
  kill "$PID"; wait "$PID" 2>/dev/null || true
}
# Before, after, before, after: the two builds share the machine's moods.
measure "$BASE_BIN"; before1=$LINE
measure ./target/release/mediabox; after1=$LINE
measure "$BASE_BIN"; before2=$LINE
measure ./target/release/mediabox; line=$LINE; peak=$PEAK
both() { python3 -c "import json,sys; a=json.loads(sys.argv[1])['first_thumb_ms']+json.loads(sys.argv[2])['first_thumb_ms']; a.sort(); print('%.1f (%.1f-%.1f)' % (a[len(a)//2], a[0], a[-1]))" "$1" "$2"; }
rate() { python3 -c "import json,sys; print('%.1f' % ((json.loads(sys.argv[1])['thumbs/s'] + json.loads(sys.argv[2])['thumbs/s']) / 2))" "$1" "$2"; }
before=$(both "$before1" "$before2"); mb=$(both "$after1" "$line")
echo "mediabox first thumbnail over HTTP: $mb ms, median (min-max) of $((2 * RUNS)) in two servers"
echo "mediabox, 32 concurrent first thumbnails: $(rate "$after1" "$line") thumbnails/s; server peak RSS $peak MiB"
echo "before the codecs left the domain ($BASE_REV): $before ms; 32 concurrent: $(rate "$before1" "$before2") thumbnails/s"
echo
echo "| | time per thumbnail, median (min-max) |"
echo "|---|---|"
echo "| vipsthumbnail (process start included) | $vips ms |"
echo "| mediabox, first request (HTTP included) | $mb ms |"
echo "| mediabox at $BASE_REV, before the codecs moved behind the port | $before ms |"
if [ -n "${BENCH_DATA:-}" ]; then
  [ "$vips" != n/a ] && printf 'thumbs\tvipsthumbnail\t%s\n' "${vips%% *}" >>"$BENCH_DATA"
  printf 'thumbs\tmediabox\t%s\n' "${mb%% *}" >>"$BENCH_DATA"
  printf 'thumbs\tmediabox at %s (before)\t%s\n' "$BASE_REV" "${before%% *}" >>"$BENCH_DATA"
fi
