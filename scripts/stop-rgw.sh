#!/usr/bin/env bash
# Stops the throwaway Ceph RGW that scripts/start-rgw.sh started in DIR ($1, default /tmp/mags-rgw), by the PIDs
# in DIR/run/*.pid (radosgw first, then the OSD, then the monitor). Removes nothing: the data was in RAM anyway.
set -euo pipefail
DIR=${1:-/tmp/mags-rgw}
RUN="$DIR/run"
stopped=0
for name in client.rgw.a osd.0 mon.a; do
  f="$RUN/$name.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then continue; fi
  # Only signal the process if it really is the ceph daemon the pid file names (pids get reused).
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  case "$exe" in */radosgw|*/ceph-osd|*/ceph-mon) ;; *) echo "stop-rgw: pid $pid in $f is not a ceph daemon ($exe); left alone" >&2; continue ;; esac
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; sleep 0.2; fi
  echo "stopped $name ($pid)"
  stopped=1
done
[ "$stopped" = 1 ] || echo "stop-rgw: not running in $DIR"
