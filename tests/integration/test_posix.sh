#!/usr/bin/env bash
# The POSIX conformance battery (tests/posix/posix_suite) through a real roamfs mount (as root,
# with -o allow_other so that its unprivileged-user cases can reach the mount), then a clean
# umount: the suite's own checks decide pass/fail; the harness adds that the daemon survives it
# (the mount still answers afterwards) and unmounts cleanly.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ -x "$POSIX_SUITE" ] || fail "posix_suite not built at $POSIX_SUITE (cmake --build $ROAMFS_BUILD)"

rfs_format ws
# The permission cases drop to uid 65534 in a child: that user must be let into the mount
# (allow_other) and through the path to it (mktemp made $WORK 0700).
mkdir -p "$WORK/ws"
chmod 0755 "$WORK" "$WORK/ws"
rfs_mount ws -o allow_other
mp=$(rfs_mp ws)
mkdir "$mp/posix"

step "posix_suite $mp/posix"
rc=0
(cd "$mp/posix" && "$POSIX_SUITE" "$mp/posix") >"$WORK/posix_suite.out" 2>&1 || rc=$?
tail -n 40 "$WORK/posix_suite.out" >&2
[ "$rc" -eq 0 ] || fail "posix_suite exited $rc (full output: $WORK/posix_suite.out)"

# The daemon must still be alive and serving after the battery.
mountpoint -q "$mp" || fail "$mp is no longer mounted after posix_suite"
echo after >"$mp/after-suite"
assert_eq after "$(cat "$mp/after-suite")" "a file written after posix_suite"
rfs_umount ws
