#!/usr/bin/env bash
# Wrong input and broken environments: each must give a non-zero exit and a message that names
# the problem, leave nothing mounted and no daemon running; and damage must never turn into wrong
# bytes:
#   - format: missing store dir, read-only store, store already formatted (refused; --force works)
#   - mount: missing store dir, store without roamfs.json, roamfs.json "version": 999, missing
#     mount point; umount of something that is not mounted; unknown command
#   - a corrupted pack (one byte flipped in the store): reads of the damaged block fail with EIO,
#     every read that succeeds returns the right bytes, other files stay readable, the daemon
#     logs the pack's name in roamfs.log, umount still works
#   - a full cache disk (16 MiB tmpfs): a 64 MiB write fails with ENOSPC, the mount keeps working,
#     umount is clean, and every byte write() accepted is in the store afterwards
# Pokes at store files, so it runs on the file store only.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store
[ -n "$PY" ] || fail "python3 not found"

# nothing_mounted NAME: a failed mount left no mount and no daemon behind
nothing_mounted() {
  local mp pid
  mp=$(rfs_mp "$1"); pid=$(rfs_pid "$1")
  if mountpoint -q "$mp" 2>/dev/null; then fail "$mp got mounted although the mount failed"; fi
  if rfs__is_ours "$pid"; then fail "a daemon ($pid) is running although the mount failed"; fi
  return 0
}

# --- format ---------------------------------------------------------------------------------------
expect_fail "format of a store dir that does not exist" "$WORK/no/such/store" \
  "$ROAMFS" format "file://$WORK/no/such/store"
[ ! -e "$WORK/no/such/store/roamfs.json" ] || fail "format of a missing dir wrote roamfs.json anyway"

rfs_mount_tmpfs "$WORK/ro" 1m
mount -o remount,ro "$WORK/ro"
expect_fail "format of a read-only store" "$WORK/ro|read-only|permission" "$ROAMFS" format "file://$WORK/ro"

rfs_format ws
sd=$(rfs_store_dir ws)
[ -s "$sd/roamfs.json" ] || fail "format wrote no $sd/roamfs.json"
sum=$(sha256sum <"$sd/roamfs.json")
expect_fail "format of a store that already holds a workspace" "already|exist|workspace|--force" \
  "$ROAMFS" format "$(rfs_store ws)"
assert_eq "$sum" "$(sha256sum <"$sd/roamfs.json")" "roamfs.json after a refused format"
rfs_format ws --force
rfs_mount ws
echo "after --force" >"$(rfs_mp ws)/f"
rfs_umount ws
step "ok: format --force over a workspace works and mounts"

# --- mount ----------------------------------------------------------------------------------------
RFS_STORE_URL[nostore]="file://$WORK/nostore/missing-store-dir"
mkdir -p "$(rfs_mp nostore)"
expect_fail "mount of a store dir that does not exist" "missing-store-dir" \
  "$ROAMFS" mount "$(rfs_store nostore)" "$(rfs_mp nostore)" --cache-dir "$(rfs_cache nostore)"
nothing_mounted nostore

mkdir -p "$(rfs_store_dir empty)" "$(rfs_mp empty)"
expect_fail "mount of a store without roamfs.json" "roamfs\.json|not formatted|no workspace|format" \
  "$ROAMFS" mount "$(rfs_store empty)" "$(rfs_mp empty)" --cache-dir "$(rfs_cache empty)"
nothing_mounted empty

rfs_format v999
# The format version field: "version" (DESIGN.md) or "roamfs" (what format writes today).
"$PY" - "$(rfs_store_dir v999)/roamfs.json" <<'PY' || fail "roamfs.json is not JSON with a version field"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
keys = [k for k in ("version", "roamfs") if isinstance(d.get(k), int)]
assert keys, "no integer version field in %s" % d
for k in keys:
    d[k] = 999
json.dump(d, open(p, "w"))
print("    | roamfs.json: %s set to 999" % ", ".join(keys))
PY
mkdir -p "$(rfs_mp v999)"
expect_fail "mount of a store with format version 999" "999" \
  "$ROAMFS" mount "$(rfs_store v999)" "$(rfs_mp v999)" --cache-dir "$(rfs_cache v999)"
nothing_mounted v999

expect_fail "mount on a mount point that does not exist" "$WORK/ws/no-such-mountpoint" \
  "$ROAMFS" mount "$(rfs_store ws)" "$WORK/ws/no-such-mountpoint" --cache-dir "$(rfs_cache ws)"
nothing_mounted ws

rfs_mount ws
expect_fail "a second mount on a live roamfs mount point" "already a roamfs mount" \
  "$ROAMFS" mount "$(rfs_store ws)" "$(rfs_mp ws)" --cache-dir "$WORK/ws/second-cache"
[ "$(grep -c " $(rfs_mp ws) fuse.roamfs " /proc/self/mounts)" = 1 ] || fail "a second roamfs mount was stacked"
mkdir -p "$WORK/ws/other-mnt"
expect_fail "a second daemon on a cache dir in use" "in use by another roamfs daemon" \
  "$ROAMFS" mount "$(rfs_store ws)" "$WORK/ws/other-mnt" --cache-dir "$(rfs_cache ws)"
! grep -q " $WORK/ws/other-mnt " /proc/self/mounts || fail "a second daemon mounted on a cache dir in use"
rfs_umount ws

step "a cache dir deleted under a live mount: umount still stops the daemon, and says what is lost"
rfs_format gone
rfs_mount gone
echo "never uploaded" >"$(rfs_mp gone)/f"
gone_pid=$(rfs_pid gone)
rm -rf "$(rfs_cache gone)"
rc=0; timeout -k 5 120 "$ROAMFS" umount "$(rfs_mp gone)" >"$WORK/gone.out" 2>&1 || rc=$?
sed 's/^/    | /' "$WORK/gone.out" >&2
[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "umount hung after the cache dir was deleted"
[ "$rc" -ne 0 ] || fail "umount reported success although the staged file was deleted with the cache dir"
rfs__wait_gone "$gone_pid" 10 || fail "the daemon (pid $gone_pid) outlived its unmount"
! grep -q " $(rfs_mp gone) " /proc/self/mounts || fail "still mounted after umount"
step "ok: umount exited $rc and the daemon is gone"

mkdir -p "$WORK/not-mounted"
expect_fail "umount of a dir that is not a roamfs mount" "not-mounted|not mounted|not a" \
  "$ROAMFS" umount "$WORK/not-mounted"
expect_fail "an unknown command" "usage|unknown|no-such-command" "$ROAMFS" no-such-command

# --- a corrupted pack -------------------------------------------------------------------------------
step "corrupted pack"
rfs_format pk --block-size 65536
rfs_mount pk
mp=$(rfs_mp pk)
echo "a small file that must stay readable" >"$mp/ok.txt"
head -c 200000 /dev/urandom >"$WORK/ok.bin.src"
cp "$WORK/ok.bin.src" "$mp/ok.bin"
rfs_umount pk
sd=$(rfs_store_dir pk)
find "$sd/data" -type f | sort >"$WORK/packs.before"
[ -s "$WORK/packs.before" ] || fail "no pack under $sd/data after umount: $(cd "$sd" && find . | head -20)"

rfs_mount pk
head -c $((3 * 1024 * 1024)) /dev/urandom >"$WORK/victim.src"
cp "$WORK/victim.src" "$mp/victim.bin"
rfs_umount pk
find "$sd/data" -type f | sort >"$WORK/packs.after"
pack=$(comm -13 "$WORK/packs.before" "$WORK/packs.after" | xargs -r ls -S | head -n 1)
[ -n "$pack" ] || fail "writing victim.bin added no pack under $sd/data"
psize=$(stat -c %s "$pack")
[ "$psize" -ge $((3 * 1024 * 1024)) ] || fail "the new pack $pack is only $psize bytes for 3 MiB of random data"
"$PY" - "$pack" <<'PY'
import os, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(os.path.getsize(p) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x5a]))
PY
step "flipped the byte at $((psize / 2)) of $pack"

rfs_new_cache pk
rfs_mount pk
rc=0
cat "$mp/victim.bin" >/dev/null 2>"$WORK/cat.err" || rc=$?
cat "$WORK/cat.err" >&2
[ "$rc" -ne 0 ] || fail "cat of a file whose pack is corrupted succeeded"
assert_match "Input/output error" "$WORK/cat.err" "cat of the corrupted file"
# Read block by block: a read either fails with EIO or returns exactly the right bytes.
eio=0 good=0
for ((i = 0; i < 48; i++)); do
  if dd if="$mp/victim.bin" bs=65536 skip=$i count=1 status=none >"$WORK/chunk" 2>"$WORK/chunk.err"; then
    dd if="$WORK/victim.src" bs=65536 skip=$i count=1 status=none | cmp -s - "$WORK/chunk" \
      || fail "block $i of victim.bin read successfully but with WRONG bytes"
    good=$((good + 1))
  else
    grep -q "Input/output error" "$WORK/chunk.err" || fail "block $i: read failed but not with EIO: $(cat "$WORK/chunk.err")"
    eio=$((eio + 1))
  fi
done
step "victim.bin: $eio blocks EIO, $good blocks read correctly"
[ "$eio" -ge 1 ] || fail "no 64 KiB block of victim.bin failed, yet cat failed"
mountpoint -q "$mp" || fail "the mount died after reading a corrupted pack"
ls -l "$mp" >/dev/null || fail "ls of the mount fails after the corrupted read"
assert_eq "a small file that must stay readable" "$(cat "$mp/ok.txt")" "ok.txt after the corrupted read"
assert_same_file "$WORK/ok.bin.src" "$mp/ok.bin" "ok.bin (another pack) after the corrupted read"
log=$(rfs_logfile pk)
[ -f "$log" ] || fail "no daemon log at $log"
grep -qF "$(basename "$pack")" "$log" || { tail -n 30 "$log" >&2; fail "$log does not name the corrupted pack $(basename "$pack")"; }
step "ok: log names the pack: $(grep -F "$(basename "$pack")" "$log" | head -n 1)"
rfs_umount pk

# --- a full cache disk ------------------------------------------------------------------------------
step "full cache disk"
rfs_format full
RFS_CACHE_DIR[full]=$WORK/full/cache-tmpfs
rfs_mount_tmpfs "${RFS_CACHE_DIR[full]}" 16m
rfs_mount full
mp=$(rfs_mp full)
echo "written before the disk filled up" >"$mp/small.txt"
head -c $((64 * 1024 * 1024)) /dev/urandom >"$WORK/big.src"
rc=0
dd if="$WORK/big.src" of="$mp/big" bs=1M 2>"$WORK/dd.err" || rc=$?
cat "$WORK/dd.err" >&2
[ "$rc" -ne 0 ] || fail "writing 64 MiB through a 16 MiB cache succeeded: expected ENOSPC"
assert_match "No space left on device" "$WORK/dd.err" "dd into a full cache"
acked=$(sed -n 's/^\([0-9]*\) bytes.*copied.*/\1/p' "$WORK/dd.err")
mountpoint -q "$mp" || fail "the mount died when the cache filled up"
ls -l "$mp" >/dev/null || fail "ls fails after ENOSPC"
assert_eq "written before the disk filled up" "$(cat "$mp/small.txt")" "small.txt after ENOSPC"
rfs_umount full
cp "${RFS_CACHE_DIR[full]}/roamfs.log" "$WORK/full/roamfs-tmpfs-cache.log" 2>/dev/null || true
umount "${RFS_CACHE_DIR[full]}"

rfs_new_cache full   # back to a cache on the big disk, empty
rfs_mount full
assert_eq "written before the disk filled up" "$(cat "$mp/small.txt")" "small.txt from the store"
if [ -e "$mp/big" ]; then
  bsize=$(stat -c %s "$mp/big")
  cmp -n "$bsize" "$WORK/big.src" "$mp/big" || fail "the partly written file holds wrong bytes (size $bsize)"
  if grep -q "error writing" "$WORK/dd.err" && [ -n "$acked" ]; then
    [ "$bsize" -ge "$acked" ] || fail "write() accepted $acked bytes, but only $bsize reached the store"
  fi
  step "ok: big is a correct $bsize-byte prefix (dd had $acked bytes accepted)"
else
  [ "${acked:-0}" = 0 ] || fail "write() accepted $acked bytes of big, but the file is not in the store"
fi
rfs_umount full
