#!/usr/bin/env bash
# PNG bar charts of a `make bench` run, with gnuplot (installed from Debian when missing
# and running as root). Input: the TSV lines the bench scripts append to $BENCH_DATA
# (chart, label, value). Output: docs/bench/<chart>.png.
# Usage: bench/charts.sh DATA OUTDIR
set -euo pipefail
DATA=$1 OUT=$2
if ! command -v gnuplot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing gnuplot-nox from Debian" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox) >/dev/null 2>&1 || true
  fi
fi
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "gnuplot is not installed: no charts"
  exit 0
fi
mkdir -p "$OUT"
title() {
  case $1 in
    uploads) echo "Uploads: mediabox files/s or MB/s as a ratio to rustus (1.0 = as fast)" ;;
    limits) echo "Large upload: ratio to the machine's limit (target 0.85)" ;;
    reads) echo "Reads: requests/s with wrk -c64 (same process)" ;;
    thumbs) echo "Thumbnail of a 12-megapixel JPEG: milliseconds (lower is better)" ;;
    app) echo "Web app: first thumbnail on screen, ms from navigation (lower is better)" ;;
    poster) echo "Poster of a 1080p 60 s video: milliseconds (lower is better)" ;;
    *) echo "$1" ;;
  esac
}
# The line a bar is read against: the target (limits), as fast as rustus (uploads).
reference() {
  case $1 in
    limits) echo 0.85 ;;
    uploads) echo 1.0 ;;
    *) echo "" ;;
  esac
}
for chart in $(cut -f1 "$DATA" | sort -u); do
  awk -F'\t' -v c="$chart" '$1 == c {printf "\"%s\"\t%s\n", $2, $3}' "$DATA" >"$OUT/$chart.dat"
  gnuplot <<GP
set terminal pngcairo size 900,420 font ",11"
set output "$OUT/$chart.png"
set title "$(title "$chart")"
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
# Room above the tallest bar for its label.
set offsets 0, 0, graph 0.12, 0
set grid ytics
# A bar's label on a white box: the reference line never strikes through it.
set style textbox opaque noborder
set xtics rotate by -20
set rmargin 20
set bmargin 7
unset key
$(ref=$(reference "$chart"); [ -n "$ref" ] && echo "set arrow from graph 0, first $ref to graph 1, first $ref nohead lc rgb '#c0392b' dt 2 lw 2")
plot "$OUT/$chart.dat" using 0:2:xtic(1) with boxes lc rgb "#3b7dd8", \
     "" using 0:2:(sprintf("%g", \$2)) with labels boxed offset 0,0.8
GP
  rm -f "$OUT/$chart.dat"
  echo "chart: $OUT/$chart.png"
done
