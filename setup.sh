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
mags run 'echo Hello World'
