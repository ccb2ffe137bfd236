#!/usr/bin/env bash
# Failures of the staging arenas (fs/data.c, "Crash order"), injected with faults_shim.c
# (LD_PRELOAD; trigger files switch each fault on and off while the daemon runs):
#   1. a write that would replace a stored block fails (ENOSPC), also with no hole punching
#      (so the region cannot even be cleared): the file keeps its stored content, also from an
#      empty cache after a sync;
#   1b. the daemon killed while a stored block is copied into staging for a 1-byte write:
#      the stored content survives (the header is written after the data);
#   2. the arenas cannot be read at unmount: the flush fails, and the unmount must not empty
#      the arenas; the next mount recovers the data;
#   3. no hole punching, and the daemon killed (in a later session, which has not yet
#      learned that punching fails) in the middle of a write into a region that held another
#      file's 4 MiB block: no byte of that file may show in the new one;
#   4. no hole punching and no writes when a flushed region is freed: its header cannot be
#      cleared, and the block must not come back over newer data at the next mount;
#   5. a truncate to 0 of three dirty blocks over three stored ones while one arena cannot be
#      cleared: the truncate succeeds and no older stored byte comes back;
#   6. a truncate whose cut of the staged last block fails on the cache disk: a later grow
#      shows zeros, not the cut bytes;
#   7. a truncate interrupted after its commit, then a recovery that cannot clear a region
#      past the new end: the mount fails (markers kept) and a later one keeps the size.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store
[ -n "$PY" ] || fail "python3 not found"
rfs_faults_shim
shim=$RFS_SHIM faults=$RFS_FAULTS

rfs_format ws
mp=$(rfs_mp ws)
mount_faulty() { LD_PRELOAD=$shim rfs_mount ws "$@"; }
count() {  # FILE BYTE: how often BYTE occurs in FILE
  "$PY" -c 'import sys; print(open(sys.argv[1], "rb").read().count(sys.argv[2].encode()))' "$1" "$2"
}

step "1. a failed write over a stored block leaves the stored content"
mount_faulty
head -c 10000 /dev/zero | tr '\0' A >"$mp/f"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
touch "$faults/arena-write-fail" "$faults/arena-no-punch"
"$PY" - "$mp/f" <<'PY' && fail "a write with the staging disk failing succeeded"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.pwrite(fd, b"B" * 10000, 0)
except OSError:
    sys.exit(1)
sys.exit(0)
PY
rm "$faults/arena-write-fail" "$faults/arena-no-punch"
echo 3 >/proc/sys/vm/drop_caches
assert_eq 10000 "$(count "$mp/f" A)" "A bytes after the failed write"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_remount_empty ws
assert_eq 10000 "$(count "$mp/f" A)" "A bytes from an empty cache after the failed write"
rfs_umount ws

step "1b. killed while a stored block is copied into staging: the stored content stays"
mount_faulty
head -c 100000 /dev/zero | tr '\0' A >"$mp/c"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
touch "$faults/arena-torn-kill"
"$PY" - "$mp/c" <<'PY' || true
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"x", 50000)   # copies the stored 100,000 bytes into staging first
PY
rfs_crashed ws "the daemon was not killed while copying the block in"
rm "$faults/arena-torn-kill"
rfs_mount ws
assert_eq 100000 "$(stat -c %s "$mp/c")" "size of c after the crash"
[ "$(count "$mp/c" A)" -ge 99999 ] || fail "c lost stored bytes in the crash: $(count "$mp/c" A) of 100000 A left"
rfs_umount ws

step "2. arenas unreadable at unmount: nothing emptied, recovered at the next mount"
mount_faulty
head -c 50000 /dev/urandom >"$WORK/g"
touch "$faults/arena-read-fail"
cp "$WORK/g" "$mp/g"
"$ROAMFS" status "$mp" --json >"$WORK/status.json" 2>&1 || true
assert_match 'cannot read the staging arenas' "$WORK/status.json" "status while the arenas cannot be read"
"$ROAMFS" umount "$mp" >/dev/null 2>&1 || true   # its flush cannot read the data: it may say so
for _ in $(seq 1 100); do mountpoint -q "$mp" || break; sleep 0.1; done
rm "$faults/arena-read-fail"
[ "$(du -k "$(rfs_cache ws)/staging" | tail -1 | cut -f1)" -gt 40 ] || fail "the arenas were emptied at an unmount whose flush failed"
rfs_mount ws
assert_same_file "$WORK/g" "$mp/g" "g after the failed unmount and a new mount"
rfs_umount ws

step "3. no hole punching, killed in the middle of a write: no other file's bytes"
touch "$faults/arena-no-punch"
mount_faulty --flush-interval 600000
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' S >"$mp/secret"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"    # its region is freed, not punched
: >"$mp/y"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_kill9 ws      # the next daemon does not know yet that punching fails
mount_faulty --flush-interval 600000
touch "$faults/arena-torn-kill"
"$PY" - "$mp/y" <<'PY' || true
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"y" * 65536, 0)
PY
rfs_crashed ws "the daemon was not killed in the middle of the write"
rm "$faults/arena-torn-kill"
mount_faulty
assert_eq 0 "$(count "$mp/y" S)" "bytes of another file in y after the torn write"
rfs_umount ws

step "4. a region whose header cannot be cleared does not come back over newer data"
touch "$faults/arena-no-punch"
mount_faulty
# written while the arenas work, stored by fsync while they fail: freeing its region fails
"$PY" - "$mp/h" "$faults/arena-write-fail" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"AAA")
open(sys.argv[2], "w").close()
os.fsync(fd)
os.close(fd)
PY
rm "$faults/arena-write-fail"
printf BBB >"$mp/h"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_umount ws
rm "$faults/arena-no-punch"
rfs_mount ws
assert_eq BBB "$(cat "$mp/h")" "h after a remount with the same cache"
rfs_remount_empty ws
assert_eq BBB "$(cat "$mp/h")" "h from an empty cache"
rfs_umount ws

step "5. a truncate while one arena cannot be cleared: it succeeds, no older byte comes back"
mount_faulty --flush-interval 600000
head -c $((12 * 1024 * 1024)) /dev/zero | tr '\0' A >"$mp/t"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
"$PY" - "$mp/t" "$faults" <<'PY' || fail "truncate with one arena failing did not succeed"
import os, sys
path, faults = sys.argv[1:]
fd = os.open(path, os.O_RDWR)
os.pwrite(fd, b"B" * (12 * 1024 * 1024), 0)     # three dirty blocks, in three arenas
with open(os.path.join(faults, "match"), "w") as m:
    m.write("arena.1\n")
for f in ("arena-write-fail", "arena-no-punch"):
    open(os.path.join(faults, f), "w").close()
os.ftruncate(fd, 0)
os.close(fd)
PY
rm "$faults/arena-write-fail" "$faults/arena-no-punch" "$faults/match"
assert_eq 0 "$(stat -c %s "$mp/t")" "size after the truncate"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_remount_empty ws
assert_eq 0 "$(stat -c %s "$mp/t")" "size after the truncate, from an empty cache"
rfs_umount ws

step "6. a failed cut of the last block: a later grow shows zeros"
mount_faulty --flush-interval 600000
"$PY" - "$mp/u" "$faults" <<'PY' || fail "truncate with a failing cache disk"
import os, sys
path, faults = sys.argv[1:]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"B" * 100000)                      # staged
open(os.path.join(faults, "arena-write-fail"), "w").close()
os.ftruncate(fd, 1000)                           # committed; the cut on the disk fails
os.remove(os.path.join(faults, "arena-write-fail"))
os.ftruncate(fd, 100000)
d = os.pread(fd, 100000, 0)
sys.exit(0 if d == b"B" * 1000 + bytes(99000) else 1)
PY
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_remount_empty ws
"$PY" -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(0 if d == b"B" * 1000 + bytes(99000) else 1)' "$mp/u" ||
  fail "u from an empty cache is not 1000 B bytes and zeros"
rfs_umount ws

step "7. an interrupted truncate whose recovery cannot free a region: the size stays cut"
MiB=$((1024 * 1024))
export ROAMFS_CRASH_AT=after-truncate-commit
mount_faulty --flush-interval 600000
unset ROAMFS_CRASH_AT
"$PY" - "$mp/v" <<'PY' || true
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"B" * (12 * 1024 * 1024))
os.ftruncate(fd, 4 * 1024 * 1024)                # the daemon dies right after the commit
PY
rfs_crashed ws "the daemon did not stop at the crash point after-truncate-commit"
touch "$faults/arena-write-fail" "$faults/arena-no-punch"
LD_PRELOAD=$shim expect_fail "a recovery that cannot free a region past a truncate" "cannot recover" \
  "$ROAMFS" mount "$(rfs_store ws)" "$mp" --cache-dir "$(rfs_cache ws)"
rm "$faults/arena-write-fail" "$faults/arena-no-punch"
rfs_mount ws
assert_eq $((4 * MiB)) "$(stat -c %s "$mp/v")" "size after the interrupted truncate"
rfs_kill9 ws
rfs_mount ws
assert_eq $((4 * MiB)) "$(stat -c %s "$mp/v")" "size after one more crash and recovery"
rfs_umount ws
