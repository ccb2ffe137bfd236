#!/usr/bin/env bash
# Reads served from the SSD block cache reach the kernel by splice: the daemon hands libfuse
# the cache file's range and never reads those bytes itself. Through real mounts with 1 MiB,
# 256 KiB and 64 KiB blocks (READs span two to sixteen blocks): a re-read from the cache
# (26 MiB of data and 8 MiB of holes), with the kernel's page cache dropped, costs the daemon
# almost no read() bytes (rchar in
# /proc/PID/io); replies that mix cache file ranges with staged (unsynced) bytes, holes and a
# tail block that ends mid-block read back exactly, at odd offsets and sizes (O_DIRECT, so
# each pread is a READ). A cache disk that fails reads (faults_shim.c) sends the reads to the
# store instead of failing them, and the unreadable block files are replaced. A max_read among the -o options is honoured.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
[ -n "$PY" ] || skip "needs python3"

MIB=$((1 << 20))
rchar() { awk '/^rchar:/ {print $2}' "/proc/$pid/io"; }

# check NAME BLOCK_SIZE MAX_MIB: the whole check on a new workspace with that block size; the
# daemon may read at most MAX_MIB itself while 34 MiB are re-read from the SSD cache
check() {
  local zc=$1 mp pid r0 r1
  rfs_format "$zc" --block-size "$2"
  rfs_mount "$zc"
  mp=$(rfs_mp "$zc")

  head -c $((24 * MIB)) /dev/urandom >"$WORK/a.src"
  cp "$WORK/a.src" "$mp/a.bin"
  # b: holes around two data runs, and a size that ends inside a block
  "$PY" - "$WORK/b.src" "$mp/b.bin" <<'EOF' || fail "writing the sparse file failed"
import os, sys
runs = [(3 * 2**20 - 1000, os.urandom(2 * 2**20 + 2000)), (8 * 2**20 + 7, os.urandom(100 * 1024))]
for path in sys.argv[1:]:
    with open(path, 'wb') as f:
        f.truncate(9 * 2**20 + 2**19 + 123)
        for off, data in runs:
            f.seek(off)
            f.write(data)
EOF
  "$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
  rfs_remount_empty "$zc"
  pid=$(rfs_pid "$zc")

  step "first read fills the SSD cache"
  cmp "$mp/a.bin" "$WORK/a.src" || fail "a.bin reads back wrong on its first (fetching) read"
  cmp "$mp/b.bin" "$WORK/b.src" || fail "the sparse b.bin reads back wrong on its first read"

  step "re-read from the SSD cache with the page cache dropped: spliced, not read by the daemon"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  r0=$(rchar)
  cmp "$mp/a.bin" "$WORK/a.src" || fail "a.bin reads back wrong from the SSD cache"
  cmp "$mp/b.bin" "$WORK/b.src" || fail "b.bin reads back wrong from the SSD cache"
  r1=$(rchar)
  # copying would read ~26 MiB into the daemon; requests and the store's polling are small
  [ $((r1 - r0)) -lt $(($3 * MIB)) ] ||
    fail "re-reading from the SSD cache made the daemon read $((r1 - r0)) bytes itself: replies are copied, not spliced"
  step "ok: the daemon read $((r1 - r0)) bytes for the re-read"

  step "replies mixing staged bytes, cache file ranges and holes, at odd offsets and sizes"
  "$PY" - "$mp" "$WORK" <<'EOF' || fail "reads mixing staged and cached blocks differ from the source"
import os, random, sys
mp, work = sys.argv[1], sys.argv[2]
MIB = 2**20
# unsynced writes: staged blocks next to cached ones (one straddles a block boundary); the
# writers stay open while reading, so nothing is flushed and the blocks stay staged
writers = []
for name, writes in (('a', [(MIB - 100, 300), (5 * MIB + 17, 10), (23 * MIB + 5, 4000)]),
                     ('b', [(4 * MIB - 3, 9), (9 * MIB + 2**19, 123)])):
    m = os.open(os.path.join(mp, name + '.bin'), os.O_RDWR)
    s = os.open(os.path.join(work, name + '.src'), os.O_RDWR)
    for off, n in writes:
        data = os.urandom(n)
        for f in (m, s):
            os.pwrite(f, data, off)
    writers += [m, s]
rnd = random.Random(7)
for name in ('a', 'b'):
    src = open(os.path.join(work, name + '.src'), 'rb').read()
    fd = os.open(os.path.join(mp, name + '.bin'), os.O_RDONLY | os.O_DIRECT)
    for i in range(300):
        off = rnd.randrange(len(src))
        n = rnd.choice([1, 4095, 4096, 70000, MIB - 1, MIB + 4097, 3 * MIB])
        got = os.pread(fd, n, off)
        if got != src[off:off + n]:
            sys.exit('%s.bin: pread(%d bytes at %d) differs from the source (%d bytes back)' % (name, n, off, len(got)))
    os.close(fd)
for f in writers:
    os.close(f)
EOF
  sync
  echo 3 >/proc/sys/vm/drop_caches
  cmp "$mp/a.bin" "$WORK/a.src" || fail "a.bin with staged blocks reads back wrong"
  cmp "$mp/b.bin" "$WORK/b.src" || fail "b.bin with staged blocks reads back wrong"
  "$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
  rfs_umount "$zc"
  step "ok: $2 blocks"
}

# 1 MiB: most READs (just under 1 MiB, see ops.c) span two blocks; 256 KiB: four or five,
# interleaved with staged blocks and holes; 64 KiB: sixteen, more than a reply carries as file
# ranges (RFS_READ_SEGS), the rest is copied
check zc 1M 4
check zc256 256K 4
check zc64 64K 20

step "a user's -o max_read wins over roamfs's own, the last of two (INIT has to repeat it, or the kernel refuses the mount)"
rfs_new_cache zc64 # the last workspace checked: a.src is its a.bin
rfs_mount zc64 -o max_read=65536 -o max_read=131072
mp=$(rfs_mp zc64)
grep -q " $mp fuse.roamfs .*max_read=131072" /proc/mounts || fail "the mount does not show max_read=131072: $(grep " $mp " /proc/mounts)"
cmp "$mp/a.bin" "$WORK/a.src" || fail "a.bin reads back wrong with -o max_read=131072"
rfs_umount zc64
step "ok"

step "a cache disk that fails reads: the read is done again from the store, not failed"
rfs_faults_shim
shim=$RFS_SHIM
rfs_new_cache zc64
LD_PRELOAD=$shim rfs_mount zc64
mp=$(rfs_mp zc64)
echo "$(rfs_cache zc64)/blocks/" >"$WORK/faults/match" # this cache's block files only
cmp "$mp/a.bin" "$WORK/a.src" || fail "a.bin reads back wrong before the fault"
# block files by name with inode and mtime: a block fetched again gets a new file
inodes() { find "$(rfs_cache zc64)/blocks" -type f -printf '%f %i:%T@\n' | sort; }
inodes >"$WORK/inodes.before"
in0=$(rfs_status_field "$mp" bytes_in)
touch "$WORK/faults/cache-read-fail"
sync
echo 3 >/proc/sys/vm/drop_caches
cmp "$mp/a.bin" "$WORK/a.src" || fail "a.bin cannot be read while the SSD cache fails reads (EIO instead of the store's copy)"
rm "$WORK/faults/cache-read-fail"
grep -q "reading it again by copying" "$(rfs_logfile zc64)" || fail "the daemon did not log the failed splice: the fault missed the spliced path"
in1=$(rfs_status_field "$mp" bytes_in)
[ $((in1 - in0)) -ge $((24 * MIB)) ] || fail "only $((in1 - in0)) bytes came from the store: the reads were not served from it"
inodes >"$WORK/inodes.after"
# a.bin's 384 blocks of 64 KiB: each unreadable file was dropped and cached anew
renewed=$(join "$WORK/inodes.before" "$WORK/inodes.after" | awk '$2 != $3' | wc -l)
[ "$renewed" -ge 384 ] || fail "only $renewed block files were replaced: unreadable cache files are kept"
rfs_umount zc64
step "ok: $((in1 - in0)) bytes fetched again from the store, $renewed block files replaced"
