#!/usr/bin/env bash
# Builds packages/agent/native/mags-tool (static, so it runs in any image): the helper every sandbox has as
# /.mags/tool (terminals and port forwarding for SSH). Skipped when the binary is newer than its source.
set -euo pipefail
DIR=$(cd "$(dirname "$0")/../packages/agent/native" && pwd)
SRC="$DIR/mags-tool.c"
OUT="$DIR/mags-tool"
if [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ]; then exit 0; fi
command -v gcc >/dev/null || { echo "gcc is missing: install gcc and libc6-dev (scripts/install-host-packages.sh)" >&2; exit 1; }
gcc -static -O2 -Wall -Wextra -Werror -o "$OUT.tmp" "$SRC"
mv -f "$OUT.tmp" "$OUT"
