#!/usr/bin/env bash
# S3 upload benchmark: mediabox (release, SQLite and PostgreSQL, MEDIABOX_STORAGE=s3) in front of s3s-fs
# on loopback, beside the ceiling: the same bytes put straight into the same s3s-fs as
# one object_store multipart upload (`upload-bench s3-put`), with no mediabox in between.
# Runs alternate (ceiling, mediabox, mediabox, ceiling, ...); each figure is the median of
# RUNS runs with min and max. The server's peak RSS (VmHWM) is read from a fresh server
# per file size, so 100 MiB and 1 GiB peaks are each their own.
# Usage: bench/s3.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${1:-3}
S3FS=$(scripts/tools.sh s3s-fs)
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1
BENCH=./target/release/upload-bench
DIR=$(mktemp -d /tmp/mediabox-bench-s3.XXXXXX)
S3PID=""
PID=""
trap 'kill $PID $S3PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

PORT=$(free_port)
mkdir -p "$DIR/s3/bench"
"$S3FS" --host 127.0.0.1 --port "$PORT" --access-key mediabox-test --secret-key mediabox-test-secret \
  "$DIR/s3" >/dev/null 2>&1 &
S3PID=$!
ENDPOINT=http://127.0.0.1:$PORT
for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

# The database of the servers: SQLite in their data folder, or DB_URL (PostgreSQL).
DB_URL=""
start_server() {
  rm -rf "$DIR/data"; mkdir -p "$DIR/data"
  local db=${DB_URL:-sqlite://$DIR/data/mediabox.db}
  MEDIABOX_DATABASE_URL=$db \
  MEDIABOX_DATA_DIR=$DIR/data MEDIABOX_LISTEN=127.0.0.1:0 MEDIABOX_JWT_SECRET=bench RUST_LOG=warn \
    MEDIABOX_STORAGE=s3 MEDIABOX_S3_BUCKET=bench MEDIABOX_S3_ENDPOINT=$ENDPOINT MEDIABOX_S3_REGION=us-east-1 \
    MEDIABOX_S3_ACCESS_KEY_ID=mediabox-test MEDIABOX_S3_SECRET_ACCESS_KEY=mediabox-test-secret \
    ./target/release/mediabox serve >"$DIR/out.log" 2>"$DIR/err.log" &
  PID=$!
  for _ in $(seq 1 100); do grep -q listening "$DIR/out.log" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^mediabox listening on //p' "$DIR/out.log")
  TOKEN=$(MEDIABOX_JWT_SECRET=bench ./target/release/mediabox token --sub bench --org bench --perm media:read,media:write)
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; rm -rf "$DIR/s3/bench"/*; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "s3s-fs 0.14.1 on loopback over $DIR/s3; mediabox release on SQLite and on PostgreSQL (a fresh database per server); $RUNS runs each, alternating"
echo

# A fresh PostgreSQL database per server when DB_URL is set.
reset_db() {
  [ -n "$DB_URL" ] || return 0
  PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" -c "CREATE DATABASE $PGDB" >/dev/null
}
PGDB=mediabox_bench_s3_$$
PG_URL=""
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  PG_URL=postgres://postgres@127.0.0.1:5432/$PGDB
fi

large() { # bytes, row name
  local ceiling=() ceiling4=() ours=() rss=() r i
  ceilings() {
    r=$($BENCH s3-put "$ENDPOINT" bench "$1" 16777216 1); ceiling+=("$(field "$r" MB/s)")
    r=$($BENCH s3-put "$ENDPOINT" bench "$1" 16777216 4); ceiling4+=("$(field "$r" MB/s)")
  }
  for i in $(seq 1 "$RUNS"); do
    # Alternating: ceilings first on odd runs, last on even ones.
    if [ $((i % 2)) = 1 ]; then ceilings "$1"; fi
    reset_db
    start_server
    r=$($BENCH large "$URL" "$TOKEN" "$1" 16777216); ours+=("$(field "$r" MB/s)")
    rss+=("$(rss_mib)")
    stop_server
    if [ $((i % 2)) = 0 ]; then ceilings "$1"; fi
  done
  local mb=$(( $1 / 1048576 ))
  local m c c4
  m=$(median "${ours[@]}")
  c=$(median "${ceiling[@]}")
  c4=$(median "${ceiling4[@]}")
  echo "| $mb MiB in 16 MiB chunks, $2 | $(stats "${ours[@]}") MB/s | $(stats "${ceiling[@]}") MB/s | $(stats "${ceiling4[@]}") MB/s | $(awk "BEGIN {printf \"%.2fx / %.2fx\", $m/$c, $m/$c4}") | $(stats "${rss[@]}") MiB |"
}

echo "| upload | mediabox | ceiling: object_store multipart, 1 part in flight | ceiling, 4 in flight | mediabox / ceilings | server peak RSS |"
echo "|---|---|---|---|---|---|"
large 104857600 SQLite
large 1073741824 SQLite
if [ -n "$PG_URL" ]; then
  DB_URL=$PG_URL
  large 104857600 PostgreSQL
  large 1073741824 PostgreSQL
  DB_URL=""
else
  echo "| PostgreSQL rows | skipped: no PostgreSQL at 127.0.0.1:5432 (trust auth) | | | | |"
fi

# Files sent in one request each, 32 clients at once, beside the ceiling of one PUT per
# file straight into the same s3s-fs: object_store's `put` with a signed payload (its
# default: SHA-256 of each file on both sides) and unsigned (`UNSIGNED-PAYLOAD`, as
# mediabox's whole-file PUT); the ratio is against the faster. $1 files of $2 bytes; $3
# the row's name; $4 how they are sent: `small` (the chunk API: one chunk, then complete:
# two requests), `tus` (tus creation, then one PATCH: what tus-js-client, Uppy and tuspy
# send), `cwu` (tus creation-with-upload: the file in the creation request, one request). Also per file, from the same runs: the server's CPU (user + system), the S3
# requests and database statements it sent (`/metrics`).
metric() { curl -s "$URL/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
files() {
  local ours=() rss=() ceil=() unsigned=() cpu=() s3req=() stmts=() r i
  for i in $(seq 1 "$RUNS"); do
    r=$($BENCH s3-small "$ENDPOINT" bench "$1" "$2" 32); ceil+=("$(field "$r" files/s)")
    rm -rf "$DIR/s3/bench"/*
    r=$(S3_UNSIGNED=1 $BENCH s3-small "$ENDPOINT" bench "$1" "$2" 32); unsigned+=("$(field "$r" files/s)")
    rm -rf "$DIR/s3/bench"/*
    reset_db
    start_server
    local cpu0 req0 st0
    cpu0=$(awk '{print $14 + $15}' "/proc/$PID/stat"); req0=$(metric mediabox_s3_requests_total); st0=$(metric mediabox_db_statements_total)
    if [ "$4" = tus ]; then
      r=$(TUS_TOKEN=$TOKEN $BENCH tus-small "$URL/api/v2/media/tus/" "$1" "$2" 32)
    elif [ "$4" = cwu ]; then
      r=$(TUS_TOKEN=$TOKEN $BENCH tus-small-cwu "$URL/api/v2/media/tus/" "$1" "$2" 32)
    else
      r=$($BENCH small "$URL" "$TOKEN" "$1" "$2" 32)
    fi
    ours+=("$(field "$r" files/s)")
    cpu+=("$(awk -v a="$cpu0" -v n="$1" -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15 - a) * 1000 / hz / n}' "/proc/$PID/stat")")
    s3req+=("$(awk -v a="$req0" -v b="$(metric mediabox_s3_requests_total)" -v n="$1" 'BEGIN {printf "%.2f", (b - a) / n}')")
    stmts+=("$(awk -v a="$st0" -v b="$(metric mediabox_db_statements_total)" -v n="$1" 'BEGIN {printf "%.2f", (b - a) / n}')")
    rss+=("$(rss_mib)")
    stop_server
  done
  local m c u best
  m=$(median "${ours[@]}"); c=$(median "${ceil[@]}"); u=$(median "${unsigned[@]}")
  best=$(awk "BEGIN {print ($u > $c) ? $u : $c}")
  echo "| $3 | $(stats "${ours[@]}") files/s | $(stats "${ceil[@]}") / $(stats "${unsigned[@]}") files/s | $(awk "BEGIN {printf \"%.2fx\", $m/$best}") | $(stats "${rss[@]}") MiB | $(median "${cpu[@]}") ms | $(median "${s3req[@]}") | $(median "${stmts[@]}") |"
}
echo
echo "| upload, 32 clients | mediabox | ceiling: one PUT per file, 32 at once, signed / unsigned payload | mediabox / faster ceiling | server peak RSS | server CPU per file | S3 requests per file | DB statements per file |"
echo "|---|---|---|---|---|---|---|---|"
files 2000 65536 "2000 files of 64 KiB, chunk API, SQLite" small
files 2000 65536 "2000 files of 64 KiB, tus creation-with-upload, SQLite" cwu
files 128 4194304 "128 photos of 4 MiB, chunk API, SQLite" small
files 128 4194304 "128 photos of 4 MiB, tus create + one PATCH, SQLite" tus
if [ -n "$PG_URL" ]; then
  DB_URL=$PG_URL
  files 2000 65536 "2000 files of 64 KiB, chunk API, PostgreSQL" small
  files 2000 65536 "2000 files of 64 KiB, tus creation-with-upload, PostgreSQL" cwu
  files 128 4194304 "128 photos of 4 MiB, chunk API, PostgreSQL" small
  files 128 4194304 "128 photos of 4 MiB, tus create + one PATCH, PostgreSQL" tus
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null
  DB_URL=""
else
  echo "| PostgreSQL rows | skipped: no PostgreSQL at 127.0.0.1:5432 (trust auth) | | | |"
fi

# Thumbnails of photos stored on S3 (first request: the original read from the bucket,
# the thumbnail put there), beside the same on the filesystem store.
$BENCH make-jpeg "$DIR/photo.jpg" 4000 3000
thumbs_on() { # fs|s3
  rm -rf "$DIR/data"; mkdir -p "$DIR/data"
  local store=(MEDIABOX_STORAGE=fs)
  [ "$1" = s3 ] && store=(MEDIABOX_STORAGE=s3 MEDIABOX_S3_BUCKET=bench MEDIABOX_S3_ENDPOINT=$ENDPOINT MEDIABOX_S3_REGION=us-east-1
    MEDIABOX_S3_ACCESS_KEY_ID=mediabox-test MEDIABOX_S3_SECRET_ACCESS_KEY=mediabox-test-secret)
  env "${store[@]}" MEDIABOX_DATA_DIR=$DIR/data MEDIABOX_LISTEN=127.0.0.1:0 MEDIABOX_JWT_SECRET=bench RUST_LOG=warn \
    ./target/release/mediabox serve >"$DIR/out.log" 2>"$DIR/err.log" &
  PID=$!
  for _ in $(seq 1 100); do grep -q listening "$DIR/out.log" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^mediabox listening on //p' "$DIR/out.log")
  TOKEN=$(MEDIABOX_JWT_SECRET=bench ./target/release/mediabox token --sub bench --org bench --perm media:read,media:write)
  r=$($BENCH thumbs "$URL" "$TOKEN" "$DIR/photo.jpg" 15 32)
  stop_server
  python3 -c "import json,sys; v=json.loads(sys.argv[1]); m=sorted(v['first_thumb_ms']); print('| %s | %.1f (%.1f-%.1f) ms | %s thumbnails/s |' % (sys.argv[2], v['median_ms'], m[0], m[-1], v['thumbs/s']))" "$r" "$2"
}
echo
echo "| first thumbnail of a 12-megapixel JPEG, over HTTP | median (min-max) of 15 | 32 at once |"
echo "|---|---|---|"
thumbs_on fs "filesystem store"
thumbs_on s3 "S3 (s3s-fs): the original read from the bucket, the thumbnail put there"
