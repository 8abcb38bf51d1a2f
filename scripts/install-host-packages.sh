#!/usr/bin/env bash
# Installs the Debian packages Mags needs on a host; with --test, also what the test suite needs.
set -euo pipefail
# attr: getfattr/setfattr, which workspace sync uses for overlay opaque directories and file capabilities.
# gcc, libc6-dev: the static sandbox tool (scripts/build-tool.sh).
# haproxy: the router's front (public URLs relayed in C; without it the Node router serves alone).
PKGS=(crun catatonit nftables iproute2 debootstrap e2fsprogs ca-certificates util-linux procps attr gcc libc6-dev haproxy)
if [ "${1:-}" = "--test" ]; then
  # ceph-mon, ceph-osd, radosgw: the S3 server the object-store tests run against (scripts/start-rgw.sh); curl signs its bucket creation.
  # openssh-client: ssh, scp and sftp against the SSH gateway.
  # chromium: the headless browser of the browser tests (the router's pages, sign-in, `mags login` approval and the
  # dashboard),
  # driven by playwright-core (no browser download).
  # wrk: the load generator bench/router runs beside its Node one.
  # python3-venv, python3-pip, python3-setuptools, python3-wheel and their wheels (-whl, for pip's build isolation
  # offline): the Python SDK tests `pip install ./python` into fresh venvs and build its wheel offline
  # (python/tests/test_package.py).
  # strace, linux-perf: bench/burst counts the programs spawned per job; perf profiles the server.
  # dnsmasq-base: Debian's dnsmasq program alone, which test/e2b-router.test.ts runs on a loopback address for the
  # wildcard name *.e2b.test. Not the `dnsmasq` package: that one adds a system service that would start and hold
  # port 53 on every interface; dnsmasq-base ships no service, so nothing is left running or enabled.
  PKGS+=(postgresql python3 python3-venv python3-pip python3-setuptools python3-wheel python3-setuptools-whl python3-wheel-whl ceph-mon ceph-osd radosgw curl openssh-client chromium wrk strace linux-perf dnsmasq-base)
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
