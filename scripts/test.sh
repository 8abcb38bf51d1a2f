#!/usr/bin/env bash
# Command 2 of 2 (npm test): the whole suite. Sets the machine up first when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mags >/dev/null || ! command -v crun >/dev/null; then
  ./setup.sh
fi
bash scripts/build-image.sh
bash scripts/install-host-packages.sh --test
npm run --silent build

# A throwaway PostgreSQL on loopback for the store tests; stopped by PID at the end.
PGDIR=$(mktemp -d /tmp/mags-test-pg-XXXXXX)
export MAGS_TEST_PG_PORT=${MAGS_TEST_PG_PORT:-55432}
bash scripts/start-postgres.sh "$PGDIR"
export MAGS_TEST_PG_URL="postgres://postgres@127.0.0.1:$MAGS_TEST_PG_PORT/mags_test"
cleanup() { bash scripts/stop-postgres.sh "$PGDIR" || true; rm -rf "$PGDIR"; }
trap cleanup EXIT

mapfile -t files < <(find packages/*/test test -name '*.test.ts' 2>/dev/null | sort)
node --import tsx --test --test-concurrency=1 "${files[@]}"
