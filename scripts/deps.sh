#!/usr/bin/env bash
# Install the Debian 12 packages roamfs needs to build and test, if any is missing.
# Run as root; with everything present it does nothing (no apt-get update).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libfuse3-dev fuse3 libsqlite3-dev liblz4-dev libssl-dev
      libcurl4-openssl-dev libxxhash-dev attr acl strace clang-format python3 valgrind)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Optional, never fails this script: node + npm for tests/s3/test_s3rver.sh (it skips without).
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "deps.sh: installing nodejs npm (optional, for the s3rver smoke test)"
  DEBIAN_FRONTEND=noninteractive timeout 600 sh -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm' >/dev/null 2>&1 \
    || echo "deps.sh: could not install npm (optional): tests/s3/test_s3rver.sh will skip" >&2
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
