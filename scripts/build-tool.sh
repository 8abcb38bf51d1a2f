#!/usr/bin/env bash
# Builds the agent's static C programs in packages/agent/native: mags-tool, the helper every sandbox has as
# /.mags/tool (terminals and port forwarding for SSH), and mags-hostd, the agent's host helper (mounts, network
# namespaces and veths by system call, so a sandbox costs no program per step), and mags-spawn, which starts the
# runtime for the agent (a fork of it costs far less than one of the server). Each is skipped when the binary is
# newer than its source.
set -euo pipefail
DIR=$(cd "$(dirname "$0")/../packages/agent/native" && pwd)
for NAME in mags-tool mags-hostd mags-spawn; do
  SRC="$DIR/$NAME.c"
  OUT="$DIR/$NAME"
  if [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ]; then continue; fi
  command -v gcc >/dev/null || { echo "gcc is missing: install gcc and libc6-dev (scripts/install-host-packages.sh)" >&2; exit 1; }
  gcc -static -O2 -Wall -Wextra -Werror -o "$OUT.tmp" "$SRC"
  mv -f "$OUT.tmp" "$OUT"
done
