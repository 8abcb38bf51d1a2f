#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 for the tests: data and socket under DIR ($1, default /tmp/mags-pg),
# listening on 127.0.0.1:${MAGS_TEST_PG_PORT:-55432} only, trust auth, with a database `mags_test`.
# Prints the postmaster PID. Idempotent: if it already runs there, it only prints the PID.
# Then: export MAGS_TEST_PG_URL=postgres://postgres@127.0.0.1:55432/mags_test   (stop with scripts/stop-postgres.sh)
set -euo pipefail
DIR=${1:-/tmp/mags-pg}
PORT=${MAGS_TEST_PG_PORT:-55432}
BIN=${MAGS_PG_BIN:-/usr/lib/postgresql/15/bin}
DATA="$DIR/data"
SOCKET="$DIR/socket"
LOG="$DIR/postgres.log"

for tool in initdb pg_ctl pg_isready; do
  [ -x "$BIN/$tool" ] || { echo "start-postgres: $BIN/$tool not found; install postgresql-15 or set MAGS_PG_BIN" >&2; exit 1; }
done

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running_pid() {
  [ -f "$DATA/postmaster.pid" ] || return 1
  local pid
  pid=$(head -n1 "$DATA/postmaster.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || return 1
  echo "$pid"
}

if pid=$(running_pid); then
  echo "$pid"
  exit 0
fi

mkdir -p "$DIR" "$SOCKET"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR" "$SOCKET"

if [ ! -f "$DATA/PG_VERSION" ]; then
  as_owner "$BIN/initdb" -D "$DATA" -A trust -U postgres -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1 || {
    tail -n 20 "$DIR/initdb.log" >&2; echo "start-postgres: initdb failed" >&2; exit 1; }
fi

# Durability is pointless for a throwaway test database; turning it off makes the tests faster.
OPTS="-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKET -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -o "$OPTS" -w -t 60 start >/dev/null || {
  tail -n 20 "$LOG" >&2; echo "start-postgres: PostgreSQL did not start (is port $PORT taken?)" >&2; exit 1; }

for _ in $(seq 1 100); do
  "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
  sleep 0.1
done
"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || { echo "start-postgres: PostgreSQL is not accepting connections" >&2; exit 1; }

if ! psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'mags_test'" | grep -q 1; then
  psql -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc 'create database mags_test' >/dev/null
fi

head -n1 "$DATA/postmaster.pid"
