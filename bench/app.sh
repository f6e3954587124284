#!/usr/bin/env bash
# The web app with a big gallery (issue 23): an event of 10 photos and one of 10,000,
# opened in chromium (playwright-core) on a release server: how long until the first
# thumbnail is on screen (from navigation start, including the app's own load), how many
# thumbnails and gallery pages were requested before any scrolling. Each gallery is
# opened twice: first when no thumbnail was made yet (each is made on its first
# request), then again (stored, reused). Usage: bench/app.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
NODE_PATH=$(scripts/tools.sh playwright-core); export NODE_PATH
CHROMIUM=$(scripts/tools.sh chromium); export CHROMIUM
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1
DIR=$(mktemp -d /tmp/mediabox-app.XXXXXX)
PID=""
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
start_mediabox false "$DIR" "$DIR/out.log"
wait_port "$DIR/out.log"
# Every permission: the bench makes events.
TOKEN=$(MEDIABOX_JWT_SECRET=bench ./target/release/mediabox token --sub bench --org bench)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); chromium $("$CHROMIUM" --version 2>/dev/null | awk '{print $2}'), mediabox $(git rev-parse --short HEAD) (release, SQLite)"
echo
echo "| gallery | open | first thumbnail on screen (ms from navigation) | thumbnails requested | gallery pages requested | tiles |"
echo "|---|---|---|---|---|---|"
for n in 10 10000; do
  seeded=$(./target/release/upload-bench gallery-seed "$BASE" "$TOKEN" "$n" 32)
  event=$(field "$seeded" event)
  for visit in first again; do
    r=$(node bench/gallery.cjs "$BASE" "$TOKEN" "$event")
    echo "| $n photos | $visit | $(field "$r" first_thumbnail_ms) | $(field "$r" thumbnails_requested) | $(field "$r" gallery_pages) | $(field "$r" tiles) |"
    if [ -n "${BENCH_DATA:-}" ] && [ "$visit" = first ]; then
      printf 'app\t%s photos: first thumbnail (ms)\t%s\n' "$n" "$(field "$r" first_thumbnail_ms)" >>"$BENCH_DATA"
    fi
  done
done
