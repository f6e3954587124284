#!/usr/bin/env bash
# Uploads side by side on this machine, in one run: mediabox (release, SQLite + filesystem)
# with MEDIABOX_FSYNC=true and =false, and rustus (a Rust tus server; installed once by
# scripts/tools.sh, --max-body-size raised to the chunk size), driven by the same client
# (`upload-bench`: mediabox chunks, or tus creation + PATCH), same bytes, same concurrency:
#   L = 1 file x 1 GiB in 16 MiB chunks; M = 200 x 4 MiB, 8 clients; S = 2000 x 64 KiB, 32 clients.
# Servers alternate (ABC CBA ...), a fresh server and data folder per run; each figure is
# the median of RUNS runs (min-max), with the server's peak RSS (VmHWM). Also measured in
# the same run: the disk with a sync after every 16 MiB and one core's MD5 rate.
# Usage: bench/side-by-side.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${1:-3}
RUSTUS=$(scripts/tools.sh rustus)
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1
BENCH=./target/release/upload-bench
DIR=$(mktemp -d /tmp/mediabox-side.XXXXXX)
PID=""
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

start() { # server
  rm -rf "$DIR/data"; mkdir -p "$DIR/data"
  local port; port=$(free_port)
  case $1 in
    mediabox-fsync|mediabox-nosync)
      local fsync=true; [ "$1" = mediabox-nosync ] && fsync=false
      MEDIABOX_FSYNC=$fsync MEDIABOX_DATA_DIR=$DIR/data MEDIABOX_LISTEN=127.0.0.1:$port MEDIABOX_JWT_SECRET=bench \
        RUST_LOG=warn ./target/release/mediabox serve >"$DIR/out.log" 2>&1 &
      PID=$!
      URL=http://127.0.0.1:$port
      TOKEN=$(MEDIABOX_JWT_SECRET=bench ./target/release/mediabox token --sub bench --org bench --perm media:read,media:write)
      ;;
    rustus)
      "$RUSTUS" --host 127.0.0.1 --port "$port" --data-dir "$DIR/data" --info-dir "$DIR/data" \
        --max-body-size 16777216 --log-level ERROR >"$DIR/out.log" 2>&1 &
      PID=$!
      URL=http://127.0.0.1:$port/files
      ;;
  esac
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
  echo "server $1 did not start" >&2; cat "$DIR/out.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

run() { # server scenario -> "value rss"
  start "$1"
  local r
  case "$1:$2" in
    rustus:L) r=$($BENCH tus-large "$URL" 1073741824 16777216) ;;
    rustus:M) r=$($BENCH tus-small "$URL" 200 4194304 8) ;;
    rustus:S) r=$($BENCH tus-small "$URL" 2000 65536 32) ;;
    *:L) r=$($BENCH large "$URL" "$TOKEN" 1073741824 16777216) ;;
    *:M) r=$($BENCH small "$URL" "$TOKEN" 200 4194304 8) ;;
    *:S) r=$($BENCH small "$URL" "$TOKEN" 2000 65536 32) ;;
  esac
  local v
  if [ "$2" = L ]; then v=$(field "$r" MB/s); else v=$(field "$r" files/s); fi
  echo "$v $(rss_mib)"
  stop
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "mediabox $(git rev-parse --short HEAD), rustus $("$RUSTUS" --version 2>/dev/null | awk '{print $2}'); $RUNS runs each, servers alternating"
dd_rate=$(dd if=/dev/zero of="$DIR/dd" bs=16M count=64 oflag=dsync 2>&1 | awk '/copied/ {print $(NF-1), $NF}'); rm -f "$DIR/dd"
md5_rate=$(head -c 1073741824 /dev/zero | (TIMEFORMAT=%R; time md5sum >/dev/null) 2>&1 | awk '{printf "%.0f MB/s", 1073.741824/$1}')
echo "limits: dd bs=16M count=64 oflag=dsync: $dd_rate; md5sum of 1 GiB on one core: $md5_rate"
echo
echo "| scenario | mediabox FSYNC=true | mediabox FSYNC=false | rustus | true / rustus | false / rustus | peak RSS (true, false, rustus) MiB |"
echo "|---|---|---|---|---|---|---|"
for sc in L M S; do
  declare -A val=() rss=()
  for i in $(seq 1 "$RUNS"); do
    order="mediabox-fsync mediabox-nosync rustus"
    [ $((i % 2)) = 0 ] && order="rustus mediabox-nosync mediabox-fsync"
    for srv in $order; do
      read -r v m < <(run "$srv" "$sc")
      val[$srv]="${val[$srv]:-} $v"; rss[$srv]="${rss[$srv]:-} $m"
    done
  done
  unit="MB/s"; [ "$sc" != L ] && unit="files/s"
  a=$(median ${val[mediabox-fsync]}); b=$(median ${val[mediabox-nosync]}); c=$(median ${val[rustus]})
  echo "| $sc ($unit) | $(stats ${val[mediabox-fsync]}) | $(stats ${val[mediabox-nosync]}) | $(stats ${val[rustus]}) | $(awk "BEGIN {printf \"%.2fx\", $a/$c}") | $(awk "BEGIN {printf \"%.2fx\", $b/$c}") | $(median ${rss[mediabox-fsync]}), $(median ${rss[mediabox-nosync]}), $(median ${rss[rustus]}) |"
  unset val rss
done
