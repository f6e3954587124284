#!/usr/bin/env bash
# Runs every test. PostgreSQL tests use MEDIABOX_TEST_PG_URL when set; otherwise, when the
# PostgreSQL server binaries exist, a throwaway cluster is started in a temporary
# directory for this run and stopped after it; otherwise PostgreSQL tests print a loud
# SKIPPED line (and fail instead when MEDIABOX_REQUIRE_PG=1). S3 tests run on s3s-fs,
# installed once by scripts/tools.sh (MEDIABOX_REQUIRE_S3=1 makes its absence a failure).
# Real tus clients (tus-js-client under node, tuspy) upload to the server in the e2e
# tests, installed the same way (MEDIABOX_REQUIRE_TUS_CLIENTS=1 makes their absence a failure),
# and so are playwright-core and Debian's chromium for the web app's browser tests
# (MEDIABOX_REQUIRE_BROWSER=1), and schemathesis and openapi-python-client, which fuzz
# /openapi.json and generate a client from it (MEDIABOX_REQUIRE_API_TOOLS=1), and Debian's
# ffmpeg for video posters (MEDIABOX_REQUIRE_FFMPEG=1).
# The e2e tests start a second `mediabox` process: this script builds it first.
set -euo pipefail
cd "$(dirname "$0")/.."

find_pg_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

cleanup() { :; }
if [ -z "${MEDIABOX_TEST_PG_URL:-}" ]; then
  if PGBIN=$(find_pg_bin); then
    PGTMP=$(mktemp -d /tmp/mediabox-pg.XXXXXX)
    PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 54329)
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
      chown postgres: "$PGTMP" 2>/dev/null || true
      as_pg=(runuser -u postgres --)
    fi
    echo "make test: starting a throwaway PostgreSQL cluster in $PGTMP on port $PGPORT"
    "${as_pg[@]}" "$PGBIN/initdb" -D "$PGTMP/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PGTMP/initdb.log" 2>&1
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/pg.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGTMP -c fsync=off -c max_connections=300" start >/dev/null
    cleanup() {
      "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null 2>&1 || true
      rm -rf "$PGTMP"
    }
    export MEDIABOX_TEST_PG_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  else
    echo "!!! make test: no MEDIABOX_TEST_PG_URL and no PostgreSQL binaries: PostgreSQL tests will be SKIPPED"
  fi
fi
trap cleanup EXIT

# Installs a test tool once (scripts/tools.sh TOOL) and exports its path as VAR unless
# VAR is set already; says loudly which tests will skip when it cannot.
tool() { # VAR TOOL what-skips
  [ -n "${!1:-}" ] && return 0
  local path
  if path=$(./scripts/tools.sh "$2"); then
    export "$1=$path"
  else
    echo "!!! make test: $2 could not be installed: $3 will be SKIPPED"
  fi
}
tool MEDIABOX_S3FS_BIN s3s-fs "S3 tests"
tool MEDIABOX_TUS_JS tus-js-client "tus-js-client tests"
tool MEDIABOX_TUSPY tuspy "tuspy tests"
tool MEDIABOX_PLAYWRIGHT playwright-core "browser tests"
tool MEDIABOX_CHROMIUM chromium "browser tests"
tool MEDIABOX_FFMPEG ffmpeg "the video poster tests"
tool MEDIABOX_SCHEMATHESIS schemathesis "the OpenAPI fuzzing tests"
tool MEDIABOX_OPENAPI_PYTHON_CLIENT openapi-python-client "the generated-client test"

# The e2e tests start a second `mediabox serve` process from the built binary; test
# runners build test targets only.
cargo build --bin mediabox

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
