# Helpers shared by the bench scripts (sourced, not run).

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Field $2 of the JSON line $1 (what upload-bench prints).
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
# The median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# "median (min-max)" of the numbers given as arguments.
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "%s (%s-%s)", v[int((NR+1)/2)], v[1], v[NR]}'; }
# Peak resident memory of process $PID, in MiB.
rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$PID/status"; }
# CPU (user + system) process $PID has used, in ms per unit of work ($1 units).
cpu_ms() { awk -v n="$1" -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) * 1000 / hz / n}' "/proc/$PID/stat"; }
# The disk's rate with a sync after every 16 MiB, in MB/s (a file in folder $1).
limit_dd() { dd if=/dev/zero of="$1/dd" bs=16M count=64 oflag=dsync 2>&1 | awk '/copied/ {printf "%.0f", $1/$(NF-3)/1e6}'; rm -f "$1/dd"; }
# One core's MD5 rate in MB/s: md5sum of a 256 MiB file in the page cache (in folder $1),
# the fastest of three. (Until 2026-12-01 one md5sum read 1 GiB from a pipe fed by head:
# the pipe's copies and head shared the two cores with it, and on a busy host it measured
# 233-498 MB/s where md5sum of a cached file measured 560-572 within minutes.)
limit_md5() {
  head -c 268435456 /dev/zero >"$1/md5"
  for _ in 1 2 3; do (TIMEFORMAT=%R; time md5sum "$1/md5" >/dev/null) 2>&1; done | sort -n | head -1 | awk '{printf "%.0f", 268.435456/$1}'
  rm -f "$1/md5"
}
# Starts a release mediabox (FSYNC $1) on data folder $2, logging to $3; sets PID, PORT,
# BASE and TOKEN (a bearer token for user bench).
start_mediabox() {
  PORT=$(free_port)
  MEDIABOX_FSYNC=$1 MEDIABOX_DATA_DIR=$2 MEDIABOX_LISTEN=127.0.0.1:$PORT MEDIABOX_JWT_SECRET=bench \
    RUST_LOG=warn ./target/release/mediabox serve >"$3" 2>&1 &
  PID=$!
  BASE=http://127.0.0.1:$PORT
  TOKEN=$(MEDIABOX_JWT_SECRET=bench ./target/release/mediabox token --sub bench --org bench --perm media:read,media:write)
}
# Starts rustus (binary $1) on data folder $2 taking bodies up to $3 bytes, logging to
# $4; sets PID, PORT and BASE.
start_rustus() {
  PORT=$(free_port)
  "$1" --host 127.0.0.1 --port "$PORT" --data-dir "$2" --info-dir "$2" --max-body-size "$3" --log-level ERROR >"$4" 2>&1 &
  PID=$!
  BASE=http://127.0.0.1:$PORT
}
# Waits until the server on PORT accepts connections (log $1 shown when it never does).
wait_port() {
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return; sleep 0.05; done
  echo "the server did not start" >&2; cat "$1" >&2; exit 1
}
# What a script measuring beside rustus starts with: rustus (installed once), release
# builds of mediabox and upload-bench (BENCH), a scratch folder DIR removed at exit with
# the server PID stopped.
setup_beside_rustus() { # scratch-folder-prefix
  RUSTUS=$(scripts/tools.sh rustus)
  cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1
  BENCH=./target/release/upload-bench
  DIR=$(mktemp -d "/tmp/$1.XXXXXX")
  PID=""
  trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
}
