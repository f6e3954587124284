#!/usr/bin/env bash
# Bulk delete benchmark: `DELETE /api/v1/images` with 100, 1 000 and 10 000 ids, each id
# a media with its own blob (so the time includes removing the blob files), on SQLite
# and on PostgreSQL. A release server per run, on loopback. PostgreSQL: the server of
# MEDIABOX_TEST_PG_URL (or 127.0.0.1:5432 as postgres), in a database made for the run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin mediabox --bin upload-bench >/dev/null 2>&1
ADMIN=${MEDIABOX_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}

run() { # backend database-url count
  local dir pid url token
  dir=$(mktemp -d /tmp/mediabox-bench.XXXXXX)
  MEDIABOX_DATA_DIR=$dir MEDIABOX_LISTEN=127.0.0.1:0 MEDIABOX_JWT_SECRET=bench RUST_LOG=warn \
    MEDIABOX_DATABASE_URL=${2:-sqlite://$dir/mediabox.db} ./target/release/mediabox serve >"$dir/out.log" 2>"$dir/err.log" &
  pid=$!
  for _ in $(seq 1 100); do grep -q listening "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^mediabox listening on //p' "$dir/out.log")
  token=$(MEDIABOX_JWT_SECRET=bench ./target/release/mediabox token --sub bench --org bench --perm media:read,media:write,media:delete)
  echo "| $1 | $(./target/release/upload-bench delete "$url" "$token" "$3" 16) |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo
echo "| database | result |"
echo "|---|---|"
for n in 100 1000 10000; do run SQLite "" "$n"; done
if psql "$ADMIN" -qAtc 'select 1' >/dev/null 2>&1; then
  for n in 100 1000 10000; do
    db="mediabox_bench_$$_$n"
    psql "$ADMIN" -qc "CREATE DATABASE $db" >/dev/null
    base=${ADMIN%/*}
    run PostgreSQL "$base/$db" "$n"
    psql "$ADMIN" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
  done
else
  echo "(PostgreSQL not reachable at $ADMIN: skipped)"
fi
