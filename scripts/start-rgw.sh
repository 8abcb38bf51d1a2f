#!/usr/bin/env bash
# Starts a throwaway Ceph RGW (S3) for the tests: one monitor, one in-memory (memstore) OSD and radosgw,
# everything (config, data, logs, sockets, pid files) under DIR ($1, default /tmp/mags-rgw), on 127.0.0.1 only.
# Creates the S3 user with fixed test keys and a bucket, then prints the endpoint (http://127.0.0.1:PORT).
# Idempotent: if it already runs in DIR it only prints the endpoint. memstore keeps data in RAM, so a
# restart starts from an empty cluster. Stop with scripts/stop-rgw.sh DIR.
#   access key TESTACCESSKEY, secret TESTSECRETKEY, bucket ${MAGS_TEST_RGW_BUCKET:-mags-test}, region us-east-1
#   ports: ${MAGS_TEST_RGW_PORT:-47480} (S3), ${MAGS_TEST_RGW_MON_PORT:-46789} (monitor)
set -euo pipefail
DIR=${1:-/tmp/mags-rgw}
PORT=${MAGS_TEST_RGW_PORT:-47480}
MON_PORT=${MAGS_TEST_RGW_MON_PORT:-46789}
BUCKET=${MAGS_TEST_RGW_BUCKET:-mags-test}
MEM_BYTES=${MAGS_TEST_RGW_MEMORY_BYTES:-4294967296}   # memstore capacity: the most the test data may take
ACCESS_KEY=TESTACCESSKEY
SECRET_KEY=TESTSECRETKEY
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "start-rgw: $*" >&2; }
die() { log "$*"; for f in "$DIR"/log/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }

if ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v radosgw >/dev/null; then
  log "installing ceph-mon ceph-osd radosgw"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ceph-mon ceph-osd radosgw >/dev/null
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF="$DIR/ceph.conf"
RUN="$DIR/run"
# Every ceph/radosgw-admin call is bounded: a misconfigured monitor makes the CLI hang for minutes.
ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }
rgw_admin() { timeout 60 radosgw-admin -c "$CONF" "$@"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
s3_up() { curl -s -o /dev/null -m 2 "$ENDPOINT/" 2>/dev/null; }

# The bucket is created through S3 itself (radosgw-admin cannot create buckets); curl signs with SigV4.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
ensure_bucket() {
  local code
  for _ in $(seq 1 50); do
    # curl 7.88 does not send x-amz-content-sha256 by itself, and RGW rejects a signature without it.
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
      --user "$ACCESS_KEY:$SECRET_KEY" -H "x-amz-content-sha256: $EMPTY_SHA256" "$ENDPOINT/$BUCKET" || true)
    case "$code" in 200|409) return 0 ;; esac
    sleep 0.2
  done
  die "could not create bucket $BUCKET (last HTTP status $code)"
}

if pid_alive "$RUN/mon.a.pid" && pid_alive "$RUN/osd.0.pid" && pid_alive "$RUN/client.rgw.a.pid" && s3_up; then
  ensure_bucket
  echo "$ENDPOINT"
  exit 0
fi

# Partly up or left over from an earlier boot (memstore lost its data anyway): stop our daemons, start afresh.
bash "$(dirname "$0")/stop-rgw.sh" "$DIR" >&2 || true
rm -rf "$DIR/mon.a" "$DIR/osd.0" "$RUN" "$DIR/log" "$CONF" "$DIR/keyring" "$DIR/monmap"
mkdir -p "$DIR/mon.a" "$DIR/osd.0" "$RUN" "$DIR/log"

FSID=$(uuidgen)
cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
# Without these radosgw loops on "get_initial_auth_request returned -13".
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
run dir = $RUN
admin socket = $RUN/\$name.asok
pid file = $RUN/\$name.pid
log file = $DIR/log/\$name.log
keyring = $DIR/keyring
mon data = $DIR/mon.\$id
osd data = $DIR/osd.\$id
osd max object name len = 460
osd max object namespace len = 64
mon warn on pool no redundancy = false

[client.rgw.a]
# tcp_nodelay: without it every GET stalls 40 ms (Nagle against the client's delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw dns name = 127.0.0.1
# Deleted objects' data is reclaimed by garbage collection; make it prompt so memstore does not fill up.
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF

ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$DIR/monmap" >/dev/null
timeout 60 ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" || die "ceph-mon --mkfs failed"
ceph-mon -c "$CONF" -i a || die "ceph-mon did not start (is port $MON_PORT taken?)"
ceph_cli -s >/dev/null || die "the monitor does not answer on 127.0.0.1:$MON_PORT"

OSD_ID=$(ceph_cli osd create)
[ "$OSD_ID" = 0 ] || die "expected OSD id 0, got $OSD_ID"
timeout 60 ceph-osd -c "$CONF" -i 0 --mkfs >"$DIR/log/osd.0.mkfs" 2>&1 || die "ceph-osd --mkfs failed"
ceph_cli osd crush add-bucket localhost host >/dev/null 2>&1
ceph_cli osd crush move localhost root=default >/dev/null 2>&1
ceph_cli osd crush add osd.0 1.0 host=localhost >/dev/null 2>&1
ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/osd.0.stderr" || die "ceph-osd did not start"
for _ in $(seq 1 150); do
  ceph_cli osd stat 2>/dev/null | grep -q '1 up' && break
  sleep 0.2
done
ceph_cli osd stat | grep -q '1 up' || die "the OSD did not come up"

radosgw -c "$CONF" -n client.rgw.a || die "radosgw did not start"
for _ in $(seq 1 300); do s3_up && break; sleep 0.2; done
s3_up || die "radosgw does not answer on $ENDPOINT (is port $PORT taken?)"

if ! rgw_admin user info --uid=test >/dev/null 2>&1; then
  rgw_admin user create --uid=test --display-name=test --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null \
    || die "radosgw-admin user create failed"
fi
ensure_bucket
echo "$ENDPOINT"
