#!/usr/bin/env bash
# Staging arenas (fs/data.c): dirty blocks live in regions of CACHE/staging/arena.<a>, each
# behind a header naming the block.
#   1. With uploads held back, 23 files (small, multi-block, rewritten across a block boundary,
#      truncated inside a staged block and grown again, sparse with a gap inside a block) read
#      back right from staging, `status` counts them, the daemon is SIGKILLed and a mount with
#      the same cache recovers every byte; an empty-cache mount then shows them all (they
#      reached the store), and a clean unmount leaves the arenas empty.
#   3. (below 2) A shrinking truncate of staged data interrupted right after its commit
#      (ROAMFS_CRASH_AT=after-truncate-commit): the next mount shows the truncated file, none
#      of the dropped data; and a write after a completed truncate survives a SIGKILL.
#   2. Staging files of an earlier version (<ino>.<idx>, data only; free.N) are recovered at
#      mount: the data reaches the file and the store, free.N files are removed. A region
#      with a damaged header (a torn write) is ignored.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
[ -n "$PY" ] || fail "python3 not found"

rfs_format ws
mp=$(rfs_mp ws)
cache=$(rfs_cache ws)
src=$WORK/src
mkdir -p "$src"

step "23 files (25 blocks) staged, uploads held back"
rfs_mount ws --flush-interval 600000
mkdir "$mp/d"
# One process writes everything and keeps the files open: the daemon uploads data of files
# open for writing only at the flush interval (set far away above) or after 5 s.
"$PY" - "$src" "$mp/d" "$WORK/ready" "$WORK/done" <<'PY' &
import os, sys, time
src, dst, ready, done = sys.argv[1:]
held = []
def both(name, fn):
    for d in (src, dst):
        fd = os.open(f"{d}/{name}", os.O_RDWR | os.O_CREAT, 0o644)
        fn(fd)
        if d == dst:
            held.append(fd)
        else:
            os.close(fd)
for i in range(1, 21):
    data = os.urandom(i * 7919)
    both(f"f{i}", lambda fd: os.write(fd, data))
big = os.urandom(9 * 1024 * 1024 + 5)          # three 4 MiB blocks
patch = os.urandom(3000)                       # rewritten across a block boundary
both("big", lambda fd: (os.write(fd, big), os.pwrite(fd, patch, 4 * 1024 * 1024 - 1000)))
t = os.urandom(300000)                         # truncated inside a staged block, then grown
both("t", lambda fd: (os.write(fd, t), os.ftruncate(fd, 5000), os.ftruncate(fd, 200000)))
sp = os.urandom(10000)                         # sparse: data at 12 MiB + 777 only
both("sparse", lambda fd: os.pwrite(fd, sp, 12 * 1024 * 1024 + 777))
open(ready, "w").close()
while not os.path.exists(done):
    time.sleep(0.05)
PY
holder=$!
for _ in $(seq 1 600); do [ -e "$WORK/ready" ] && break; kill -0 $holder 2>/dev/null || break; sleep 0.1; done
[ -e "$WORK/ready" ] || fail "the writer did not finish"
for f in "$src"/*; do assert_same_file "$f" "$mp/d/$(basename "$f")" "staged $(basename "$f") read back"; done
json=$("$ROAMFS" status "$mp" --json) || true
files=$(printf '%s' "$json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["mounts"][0]["dirty_files"])')
[ "$files" = 23 ] || fail "status counts $files dirty files, expected 23 (json: $json)"
[ "$(du -k "$cache/staging" | tail -1 | cut -f1)" -gt 9000 ] || fail "the arenas hold less than the staged data"
ls "$cache/staging" | grep -Ev '^arena\.[0-3]$' && fail "staging holds files that are not arenas"

step "SIGKILL and a mount with the same cache recovers every staged byte"
rfs_kill9 ws
touch "$WORK/done"
wait $holder || true
rfs_mount ws
for f in "$src"/*; do assert_same_file "$f" "$mp/d/$(basename "$f")" "$(basename "$f") after SIGKILL"; done
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait after recovery failed"
json=$("$ROAMFS" status "$mp" --json) || true
files=$(printf '%s' "$json" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["mounts"][0]["dirty_files"])')
[ "$files" = 0 ] || fail "status counts $files dirty files after sync --wait"
rfs_umount ws
for f in "$cache"/staging/arena.*; do [ "$(stat -c %s "$f")" = 0 ] || fail "$f not emptied at a clean unmount"; done
rfs_new_cache ws
rfs_mount ws
for f in "$src"/*; do assert_same_file "$f" "$mp/d/$(basename "$f")" "$(basename "$f") from an empty cache"; done

step "staging files of an earlier version are recovered"
printf 'old content\n' >"$mp/d/legacy"
ino=$(stat -c %i "$mp/d/legacy")
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_umount ws
cache=$(rfs_cache ws)
head -c 70000 /dev/urandom >"$src/legacy"
cp "$src/legacy" "$cache/staging/$ino.0"
: >"$cache/staging/free.7"
# a torn region: the magic of a header without the rest
printf 'RFSSTG2\0garbage' | dd of="$cache/staging/arena.1" bs=1 seek=$((3 * (4 * 1024 * 1024 + 4096))) conv=notrunc status=none
rfs_mount ws
assert_same_file "$src/legacy" "$mp/d/legacy" "legacy staging file $ino.0 after mount"
[ ! -e "$cache/staging/$ino.0" ] || fail "legacy staging file $ino.0 still there after its recovery"
[ ! -e "$cache/staging/free.7" ] || fail "legacy free.7 not removed"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_remount_empty ws
assert_same_file "$src/legacy" "$mp/d/legacy" "legacy data from an empty cache"
rfs_umount ws

step "3. a truncate interrupted between its commit and its drops"
MiB=$((1024 * 1024))
export ROAMFS_CRASH_AT=after-truncate-commit
rfs_mount ws --flush-interval 600000
unset ROAMFS_CRASH_AT
head -c $((12 * MiB)) /dev/zero | tr '\0' A >"$mp/t"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
"$PY" - "$mp/t" $((5 * MiB + 1234)) <<'PY' || true
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"B" * (12 * 1024 * 1024), 0)   # staged over the stored A
os.ftruncate(fd, int(sys.argv[2]))            # the daemon dies right after committing it
PY
rfs_crashed ws "the daemon did not stop at the crash point after-truncate-commit"
rfs_mount ws --flush-interval 600000
assert_eq $((5 * MiB + 1234)) "$(stat -c %s "$mp/t")" "size after the interrupted truncate"
b=$("$PY" -c 'import sys; print(open(sys.argv[1], "rb").read().count(b"B"))' "$mp/t")
assert_eq $((5 * MiB + 1234)) "$b" "B bytes after the interrupted truncate"

step "3b. a write after a completed truncate survives a SIGKILL"
"$PY" - "$mp/t" "$WORK/ready3" "$WORK/done3" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
os.ftruncate(fd, 2 * 1024 * 1024 + 99)            # staged data dropped: a marker in the DB
os.pwrite(fd, b"C" * 10000, 8 * 1024 * 1024)     # written after it, still staged
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
PY
holder=$!
for _ in $(seq 1 300); do [ -e "$WORK/ready3" ] && break; sleep 0.1; done
[ -e "$WORK/ready3" ] || fail "the writer did not finish"
rfs_kill9 ws
touch "$WORK/done3"
wait $holder || true
rfs_mount ws
assert_eq $((8 * MiB + 10000)) "$(stat -c %s "$mp/t")" "size after the SIGKILL"
"$PY" - "$mp/t" <<'PY' || fail "content after the truncate, the write and the SIGKILL is wrong"
import sys
d = open(sys.argv[1], "rb").read()
cut = 2 * 1024 * 1024 + 99
ok = d[:cut] == b"B" * cut and d[cut:8 * 1024 * 1024] == bytes(8 * 1024 * 1024 - cut) and d[8 * 1024 * 1024:] == b"C" * 10000
sys.exit(0 if ok else 1)
PY
rfs_umount ws
