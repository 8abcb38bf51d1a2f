#!/usr/bin/env bash
# Command 1 of 2: sets up this machine to run Mags, then runs `mags run 'echo Hello World'`.
# Safe to run again: every step checks what is already done.
set -euo pipefail
cd "$(dirname "$0")"
[ "$(id -u)" = 0 ] || { echo "setup.sh must run as root (sandboxes need namespaces, mounts and cgroups)" >&2; exit 1; }

step() { printf '\n==> %s\n' "$*"; }

step "host packages"
bash scripts/install-host-packages.sh "$@"

step "node dependencies"
stamp=node_modules/.mags-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
else
  echo "up to date"
fi

step "build"
npm run --silent build
chmod +x packages/cli/dist/main.js

step "host settings"
bash scripts/prepare-host.sh

step "root image"
bash scripts/build-image.sh

step "mags on PATH"
ln -sf "$PWD/packages/cli/dist/main.js" /usr/local/bin/mags
echo "/usr/local/bin/mags -> $PWD/packages/cli/dist/main.js"

step "mags run 'echo Hello World'"
# With no server configured, mags starts one in the background on 127.0.0.1:7373 and keeps it for the next command.
# MAGS_SETUP_STOP_SERVER=1 (the test script and CI) stops the one this run started, by its PID, so that the tests
# find the default address free (one of them checks that very start).
listening() { (exec 3<>/dev/tcp/127.0.0.1/7373) 2>/dev/null; }
was_listening=0
listening && was_listening=1
mags run 'echo Hello World'
if [ "${MAGS_SETUP_STOP_SERVER:-0}" = 1 ] && [ "$was_listening" = 0 ] && [ -z "${MAGS_API_URL:-}" ]; then
  pidfile="${MAGS_HOME:-$HOME/.mags}/server.pid"
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q ' server '; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped the background server it started (pid $pid)"
  fi
fi
