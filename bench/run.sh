#!/usr/bin/env bash
# `make bench`: every benchmark, one after another, on release builds. Installs what it
# needs itself (rustus and s3s-fs into the tools folder; wrk, vipsthumbnail and gnuplot
# from Debian when running as root). Writes the run's results (machine, versions,
# commands, each target with its measured value) between the `make bench` markers in
# docs/benchmarks.md, and PNG charts into docs/bench/; the analysis around them is
# written by hand. Usage: bench/run.sh (BENCH_KEEP_DOC=1 prints without writing).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DATA
BENCH_DATA=$(mktemp /tmp/mediabox-bench-data.XXXXXX)
OUT=$(mktemp /tmp/mediabox-bench-out.XXXXXX)
trap 'rm -f "$BENCH_DATA" "$OUT"' EXIT
started=$(date +%s)
section() { # title command...
  local t0; t0=$(date +%s)
  echo; echo "### $1"; echo; echo "Command: \`${*:2}\`"; echo
  "${@:2}"
  echo; echo "($(( $(date +%s) - t0 )) s)"
}
{
  echo "Run of $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD): $(nproc) cores," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(rustc --version)."
  section "Uploads beside rustus" ./bench/side-by-side.sh
  section "tus uploads beside rustus" ./bench/tus.sh
  section "Uploads, one server, growing files" ./bench/uploads.sh
  section "Uploads on S3 (s3s-fs)" ./bench/s3.sh
  section "Bulk delete" ./bench/delete.sh
  section "Thumbnails beside vipsthumbnail" ./bench/thumbs.sh
  section "Video posters beside ffmpeg" ./bench/video.sh
  section "Reads" ./bench/reads.sh
  section "The web app with a big gallery" ./bench/app.sh
} 2>&1 | tee "$OUT"
total=$(( $(date +%s) - started ))
echo "make bench took $total s"
charts=$(./bench/charts.sh "$BENCH_DATA" docs/bench)
echo "$charts"
if [ -z "${BENCH_KEEP_DOC:-}" ]; then
  python3 - docs/benchmarks.md "$OUT" "$total" <<'EOF'
import re, sys
doc, out, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(doc).read()
body = open(out).read().strip()
charts = "\n".join(f"![{c}](bench/{c}.png)" for c in ("uploads", "limits", "reads", "thumbs", "poster", "app"))
block = (f"<!-- make bench: start (written by bench/run.sh; edits here are lost) -->\n"
         f"## Latest `make bench`\n\n{body}\n\nWhole run: {total // 60} min {total % 60} s.\n\n{charts}\n"
         f"<!-- make bench: end -->")
pattern = re.compile(r"<!-- make bench: start.*?<!-- make bench: end -->", re.S)
text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
open(doc, "w").write(text)
EOF
  echo "results written to docs/benchmarks.md"
fi
