#!/usr/bin/env bash
# Video poster benchmark (SPEC 11, issue 25): the `preview` poster of a 1080p, 60 s H.264
# video (made here by ffmpeg from its testsrc2), as the first request for it on a warm
# release server (HTTP, the database, the store's file, ffprobe and ffmpeg included),
# beside the same ffmpeg command run alone on the same file (process start included).
# Also how long after complete the video's size and duration are known (its thumbnail is
# made in the background then). SQLite, filesystem store, loopback. Target: at most 1.2x
# of ffmpeg alone.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
RUNS=${POSTER_RUNS:-7}
FFMPEG=$(scripts/tools.sh ffmpeg)
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1

DIR=$(mktemp -d /tmp/mediabox-video.XXXXXX)
PID=""
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
"$FFMPEG" -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=60 \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p "$DIR/clip.mp4"
echo "input: 1920x1080, 60 s, 30 fps, H.264 (libx264 veryfast), $(($(wc -c < "$DIR/clip.mp4") / 1048576)) MiB"
echo "$("$FFMPEG" -version | head -n1)"
echo

# ffmpeg alone: the command mediabox runs for a preview (seek to 3 s, thumbnail filter
# over 48 frames, fit in 1600x1600), one process per poster.
alone_ms=()
for _ in $(seq 1 "$RUNS"); do
  t0=$(date +%s%N)
  "$FFMPEG" -nostdin -v error -threads 1 -filter_threads 1 -protocol_whitelist file -ss 3.000 -i "$DIR/clip.mp4" \
    -map 0:v:0 -an -sn -dn \
    -vf "thumbnail=48,scale=w='min(1600,iw)':h='min(1600,ih)':force_original_aspect_ratio=decrease" \
    -frames:v 1 -map_metadata -1 -fflags +bitexact -flags:v +bitexact -c:v mjpeg -q:v 3 -f image2pipe pipe:1 >"$DIR/alone.jpg"
  t1=$(date +%s%N)
  alone_ms+=("$(( (t1 - t0) / 100000 ))")
done
alone=$(stats "${alone_ms[@]}" | awk '{gsub(/[()]/,""); split($2,r,"-"); printf "%.1f (%.1f-%.1f)", $1/10, r[1]/10, r[2]/10}')
echo "ffmpeg alone: $alone ms per poster, median (min-max) of $RUNS"

start_mediabox true "$DIR/data" "$DIR/server.log"
wait_port "$DIR/server.log"
line=$(./target/release/upload-bench poster "$BASE" "$TOKEN" "$DIR/clip.mp4" "$RUNS")
peak=$(rss_mib)
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
mb=$(python3 -c "import json,sys; v=json.loads(sys.argv[1]); m=sorted(v['preview_ms']); print('%.1f (%.1f-%.1f)' % (v['median_ms'], m[0], m[-1]))" "$line")
facts=$(python3 -c "import json,sys; v=json.loads(sys.argv[1]); m=sorted(v['facts_ms']); print('%.1f (%.1f-%.1f)' % (v['facts_median_ms'], m[0], m[-1]))" "$line")
ratio=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1].split()[0]) / float(sys.argv[2].split()[0])))" "$mb" "$alone")
echo "mediabox first preview poster over HTTP: $mb ms, median (min-max) of $RUNS; server peak RSS $peak MiB"
echo "size and duration known after complete: $facts ms (the thumbnail, made in the background)"
echo
echo "| | time per poster, median (min-max) | target |"
echo "|---|---|---|"
echo "| ffmpeg alone (process start included) | $alone ms | |"
echo "| mediabox, first preview request (HTTP, ffprobe, store included) | $mb ms | ${ratio}x of ffmpeg alone (at most 1.2x) |"
echo "| mediabox, complete to duration known | $facts ms | within seconds |"
if [ -n "${BENCH_DATA:-}" ]; then
  printf 'poster\tffmpeg alone\t%s\n' "${alone%% *}" >>"$BENCH_DATA"
  printf 'poster\tmediabox\t%s\n' "${mb%% *}" >>"$BENCH_DATA"
fi
