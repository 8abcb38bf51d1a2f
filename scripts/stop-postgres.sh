#!/usr/bin/env bash
# Stops the throwaway PostgreSQL that scripts/start-postgres.sh started in DIR ($1, default /tmp/mags-pg),
# by the PID in its postmaster.pid (fast shutdown). Does nothing if it is not running. Keeps the data.
set -euo pipefail
DIR=${1:-/tmp/mags-pg}
PIDFILE="$DIR/data/postmaster.pid"
[ -f "$PIDFILE" ] || { echo "stop-postgres: not running in $DIR"; exit 0; }
PID=$(head -n1 "$PIDFILE")
if [ -z "$PID" ] || ! kill -0 "$PID" 2>/dev/null; then
  echo "stop-postgres: not running in $DIR (stale $PIDFILE)"
  exit 0
fi
kill -INT "$PID"   # SIGINT = fast shutdown: disconnect clients, stop cleanly
for _ in $(seq 1 300); do
  kill -0 "$PID" 2>/dev/null || { echo "stopped $PID"; exit 0; }
  sleep 0.1
done
echo "stop-postgres: PostgreSQL ($PID) did not stop within 30 s" >&2
exit 1
