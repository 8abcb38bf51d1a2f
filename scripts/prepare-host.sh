#!/usr/bin/env bash
# Host settings sandboxes need; idempotent. (The agent applies them again at start, e.g. after a reboot.)
set -euo pipefail
# crun refuses hybrid cgroup hosts while the v2 hierarchy still holds a controller: bind hugetlb to v1.
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi
sysctl -qw net.ipv4.ip_forward=1
