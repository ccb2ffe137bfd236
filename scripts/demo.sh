#!/usr/bin/env bash
# Build roamfs and mount a demo workspace kept in a local directory store:
#   store /var/lib/roamfs-demo/store, mount point /mnt/roamfs-demo, cache /var/cache/roamfs/demo.
# Run as root on Debian 12. Running it again while mounted only prints where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
store=/var/lib/roamfs-demo/store
mp=/mnt/roamfs-demo
cache=/var/cache/roamfs/demo

[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (it installs packages and mounts)" >&2; exit 1; }
scripts/deps.sh
modprobe fuse 2>/dev/null || true
[ -c /dev/fuse ] || { echo "demo.sh: no /dev/fuse (a container without --device /dev/fuse?)" >&2; exit 1; }
[ -f build/CMakeCache.txt ] || cmake -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2
roamfs=$top/build/roamfs

mkdir -p "$store" "$mp" "$cache"
if mountpoint -q "$mp"; then
  echo "already mounted: $mp"
else
  if [ ! -f "$store/roamfs.json" ]; then
    "$roamfs" format "file://$store"
  fi
  "$roamfs" mount "file://$store" "$mp" --cache-dir "$cache"
fi
cat <<TXT

roamfs workspace file://$store is mounted at $mp
  cache and metadata: $cache (daemon log: $cache/roamfs.log)
  try:        cp -r /usr/share/doc/fuse3 $mp/ && ls -l $mp
  unmount:    $roamfs umount $mp
  (umount uploads everything first; mount it again with:
   $roamfs mount file://$store $mp --cache-dir $cache)
TXT
