#!/usr/bin/env bash
# Command 2 of 2 (npm test): the whole suite. Sets the machine up first when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
# setup.sh is idempotent and quick on a set-up machine; running it always means this checkout's dependencies,
# build and `mags` are the ones under test.
MAGS_SETUP_STOP_SERVER=1 ./setup.sh
bash scripts/install-host-packages.sh --test

# A throwaway PostgreSQL on loopback for the store tests; stopped by PID at the end.
PGDIR=$(mktemp -d /tmp/mags-test-pg-XXXXXX)
export MAGS_TEST_PG_PORT=${MAGS_TEST_PG_PORT:-55432}
bash scripts/start-postgres.sh "$PGDIR"
export MAGS_TEST_PG_URL="postgres://postgres@127.0.0.1:$MAGS_TEST_PG_PORT/mags_test"
# One throwaway Ceph RGW (S3) on loopback for all object-store tests (each uses a key prefix of its own); stopped by PID.
RGWDIR=$(mktemp -d /tmp/mags-test-rgw-XXXXXX)
cleanup() {
  bash scripts/stop-postgres.sh "$PGDIR" || true; rm -rf "$PGDIR"
  bash scripts/stop-rgw.sh "$RGWDIR" || true; rm -rf "$RGWDIR"
}
trap cleanup EXIT
export MAGS_TEST_RGW_PORT=${MAGS_TEST_RGW_PORT:-47480} MAGS_TEST_RGW_MON_PORT=${MAGS_TEST_RGW_MON_PORT:-46789}
RGW_ENDPOINT=$(bash scripts/start-rgw.sh "$RGWDIR")
export MAGS_TEST_S3_URL="s3://TESTACCESSKEY:TESTSECRETKEY@mags-test?endpoint=$RGW_ENDPOINT"

mapfile -t files < <(find packages/*/test test -name '*.test.ts' 2>/dev/null | sort)
node --import tsx --test --test-concurrency=1 "${files[@]}"
