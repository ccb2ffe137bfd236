#!/usr/bin/env bash
# Build roamfs (incrementally) in build/ and run every test with ctest: unit tests, the POSIX
# suite on a local dir, and the integration tests through real FUSE mounts (those need root
# and /dev/fuse, and are reported as skipped without them).
# Extra arguments go to ctest, e.g. ./scripts/test.sh -R integ_persist
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  scripts/deps.sh
  modprobe fuse 2>/dev/null || true
else
  echo "test.sh: not root: the integration tests will be skipped" >&2
fi
[ -f build/CMakeCache.txt ] || cmake -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2
ctest --test-dir build --output-on-failure -j1 "$@"
