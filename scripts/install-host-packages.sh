#!/usr/bin/env bash
# Installs the Debian packages Mags needs on a host; with --test, also what the test suite needs.
set -euo pipefail
PKGS=(crun catatonit nftables iproute2 debootstrap e2fsprogs ca-certificates util-linux procps)
if [ "${1:-}" = "--test" ]; then
  PKGS+=(postgresql python3)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing host packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
