#!/usr/bin/env bash
# Reads that miss the cache, through a real mount on a fresh cache dir: a random reader of a file
# small against the cache gets all of the file fetched in the background, each block once (a
# reader's own miss takes the block over from the readahead queue instead of fetching it
# twice); a reader that only peeks, and a file too big for the cache's share, are not fetched
# whole; a sequential reader reads everything once, with a readahead window that starts small
# and doubles per block; concurrent sequential and random readers read right and fetch each
# block once; --parallel-fetches sets the number of fetch workers.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
[ -n "$PY" ] || skip "needs python3"

MIB=$((1 << 20))
BLOCKS=16 # 4 MiB blocks (the default block size)
rfs_format ra
rfs_mount ra
mp=$(rfs_mp ra)
head -c $((BLOCKS * 4 * MIB)) /dev/urandom >"$WORK/data.src"
cp "$WORK/data.src" "$mp/data.bin"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_umount ra

# preads BLOCK...: 4 KiB at 1234 bytes into each named block, in that order, each checked
# against the source file.
preads() {
  "$PY" - "$mp/data.bin" "$WORK/data.src" "$@" <<'EOF' || fail "random reads through the mount failed"
import os, sys
f, src = os.open(sys.argv[1], os.O_RDONLY), open(sys.argv[2], 'rb')
for b in sys.argv[3:]:
    off = int(b) * (4 << 20) + 1234
    src.seek(off)
    if os.pread(f, 4096, off) != src.read(4096):
        sys.exit('block %s: the bytes read differ from the source' % b)
EOF
}
blocks() { rfs_status_field "$mp" cache_blocks; }
fresh_mount() { rfs_new_cache ra; rfs_mount ra "$@"; sync; echo 3 >/proc/sys/vm/drop_caches; }

step "a random reader of a file small against the cache: the whole file comes, each block once"
fresh_mount
preads 9 2 13 5 11
for ((i = 0; i < 300; i++)); do [ "$(blocks)" -ge $BLOCKS ] && break; sleep 0.1; done
assert_eq $BLOCKS "$(blocks)" "blocks in the cache after five random misses"
in=$(rfs_status_field "$mp" bytes_in)
# each block crosses the wire once: a second fetch of any of them would add 4 MiB
[ "$in" -lt $(((BLOCKS * 4 + 1) * MIB)) ] || fail "fetched $in bytes for a $((BLOCKS * 4)) MiB file: blocks were fetched twice"
gets=$(rfs_status_field "$mp" req_get)
cmp "$mp/data.bin" "$WORK/data.src" || fail "the file reads back wrong from the cache"
in2=$(rfs_status_field "$mp" bytes_in) # (status and the idle pulls read a few hundred bytes)
[ $((in2 - in)) -lt $MIB ] || fail "reading the whole file afterwards fetched $((in2 - in)) more bytes"
hits=$(rfs_status_field "$mp" cache_hits) misses=$(rfs_status_field "$mp" cache_misses)
# a read counts once: a miss when it waited for the store (the five preads; the kernel may
# split one into two requests), else a hit (the whole-file read)
[ "$misses" -ge 5 ] && [ "$misses" -le 10 ] || fail "status counts $misses cache misses for five cold reads"
[ "$hits" -ge 64 ] || fail "status counts $hits cache hits for a 64 MiB read from the cache"
step "ok: $in bytes in, $gets GETs, $hits hits, $misses misses"
rfs_umount ra

step "a reader that only peeks into the file does not pull all of it"
fresh_mount
preads 3 12 7
sleep 2
assert_eq 3 "$(blocks)" "blocks in the cache after three random reads"
rfs_umount ra

step "a file bigger than a quarter of the cache is not fetched whole"
fresh_mount --cache-size 200M
preads 9 2 13 5 11 7 1
sleep 2
assert_eq 7 "$(blocks)" "blocks in the cache after seven random reads of a 64 MiB file, 200 MiB cache"
rfs_umount ra

step "a sequential reader gets every block once, read ahead"
fresh_mount
cmp "$mp/data.bin" "$WORK/data.src" || fail "a sequential read returned wrong bytes"
in=$(rfs_status_field "$mp" bytes_in)
[ "$in" -lt $(((BLOCKS * 4 + 1) * MIB)) ] || fail "fetched $in bytes for a $((BLOCKS * 4)) MiB file read once"
assert_eq $BLOCKS "$(blocks)" "blocks in the cache after one sequential read"
rfs_umount ra

step "concurrent readers of one cold file, sequential and random, read right and fetch each block once"
fresh_mount
pids=()
for i in 1 2 3; do (cmp "$mp/data.bin" "$WORK/data.src" >"$WORK/conc.$i" 2>&1 || echo "cmp $i failed" >>"$WORK/conc.$i") & pids+=($!); done
for seed in 1 2; do
  ("$PY" - "$mp/data.bin" "$WORK/data.src" "$seed" <<'EOF' >"$WORK/conc.r$seed" 2>&1 || echo "random reader $seed failed" >>"$WORK/conc.r$seed") &
import os, random, sys
f, src = os.open(sys.argv[1], os.O_RDONLY), open(sys.argv[2], 'rb')
rnd = random.Random(int(sys.argv[3]))
size = os.fstat(f).st_size
for _ in range(300):
    off = rnd.randrange(0, size - 65536)
    n = rnd.choice([1, 4096, 65536])
    src.seek(off)
    if os.pread(f, n, off) != src.read(n):
        sys.exit('%d bytes at %d differ from the source' % (n, off))
EOF
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
if grep -l . "$WORK"/conc.* >/dev/null 2>&1; then cat "$WORK"/conc.* >&2; fail "a concurrent reader read wrong bytes"; fi
in=$(rfs_status_field "$mp" bytes_in)
[ "$in" -lt $(((BLOCKS * 4 + 1) * MIB)) ] || fail "five concurrent readers fetched $in bytes of a $((BLOCKS * 4)) MiB file: blocks were fetched twice"
rfs_umount ra

step "a sequential reader's readahead starts at 4 blocks and doubles with every block it enters"
# 1 MiB blocks, 32 of them; the reads skip the kernel's own readahead (POSIX_FADV_RANDOM), so
# each 1 MiB read is one request for one block, in order
rfs_format ra1 --block-size 1M
rfs_mount ra1
mp=$(rfs_mp ra1)
head -c $((32 * MIB)) /dev/urandom >"$WORK/small.src"
cp "$WORK/small.src" "$mp/data.bin"
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
rfs_remount_empty ra1
sync; echo 3 >/proc/sys/vm/drop_caches
# seqread BLOCK... [wait BLOCK...]: read the named 1 MiB blocks in this order through one open
# file, checked against the source; at "wait", creates $WORK/go.ready and waits until $WORK/go
# exists (the test looks at the cache meanwhile)
seqread() {
  "$PY" - "$mp/data.bin" "$WORK/small.src" "$WORK/go" "$@" <<'EOF' || fail "sequential reads through the mount failed"
import os, sys, time
f, src = os.open(sys.argv[1], os.O_RDONLY), open(sys.argv[2], 'rb')
os.posix_fadvise(f, 0, 0, os.POSIX_FADV_RANDOM)
for b in sys.argv[4:]:
    if b == 'wait':
        open(sys.argv[3] + '.ready', 'w').close()
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.05)
        continue
    b = int(b)
    src.seek(b << 20)
    if os.pread(f, 1 << 20, b << 20) != src.read(1 << 20):
        sys.exit('block %d: the bytes read differ from the source' % b)
EOF
}
# settled: the cache's block count once it stops changing (the readahead is done)
settled() {
  local prev=-1 cur i
  for ((i = 0; i < 100; i++)); do
    cur=$(rfs_status_field "$mp" cache_blocks)
    [ "$cur" = "$prev" ] && break
    prev=$cur; sleep 0.3
  done
  echo "$cur"
}
# windows 4, 8, 16, 32 as the stream enters blocks 0, 2, 3, 4: the whole file is queued by then;
# two reads swapped (as FUSE's threads deliver the kernel's readahead now and then) do not
# start the stream over
rm -f "$WORK/go" "$WORK/go.ready"
seqread 0 wait 2 1 3 4 &
reader=$!
for ((i = 0; i < 200; i++)); do [ -e "$WORK/go.ready" ] && break; sleep 0.05; done
assert_eq 5 "$(settled)" "blocks cached after reading block 0 (it and the 4 after it)"
touch "$WORK/go"
wait $reader || fail "the reader failed"
assert_eq 32 "$(settled)" "blocks cached after reading blocks 0, 2, 1, 3, 4"
cmp "$mp/data.bin" "$WORK/small.src" || fail "the file reads back wrong"
rfs_umount ra1

step "--parallel-fetches sets the number of fetch workers; bad values are refused"
threads() { awk '/^Threads:/{print $2}' "/proc/$(rfs_pid ra1)/status"; }
rfs_mount ra1
t_default=$(threads)
rfs_umount ra1
rfs_mount ra1 --parallel-fetches 48
t_48=$(threads)
rfs_umount ra1
[ $((t_48 - t_default)) -eq 32 ] || fail "threads: $t_default by default (16 fetch workers), $t_48 with --parallel-fetches 48"
rfs_mount ra1 -o parallel-fetches=2
t_2=$(threads)
rfs_umount ra1
[ $((t_default - t_2)) -eq 14 ] || fail "threads: $t_default by default, $t_2 with -o parallel-fetches=2"
expect_fail "--parallel-fetches 0" "parallel-fetches.*1 to 64" "$ROAMFS" mount "$(rfs_store ra1)" "$mp" --parallel-fetches 0
expect_fail "-o parallel-fetches=65" "parallel-fetches.*1 to 64" "$ROAMFS" mount "$(rfs_store ra1)" "$mp" -o parallel-fetches=65

step "with 64 MiB blocks the fetch workers are capped at 256 MiB of blocks (4)"
rfs_format ra64 --block-size 64M
rfs_mount ra64 --parallel-fetches 16
t_64=$(awk '/^Threads:/{print $2}' "/proc/$(rfs_pid ra64)/status")
rfs_umount ra64
[ $((t_default - t_64)) -eq 12 ] || fail "threads: $t_default with 16 fetch workers of 1 MiB blocks, $t_64 with 16 asked for 64 MiB blocks"
assert_match "using 4" "$(rfs_logfile ra64)" "the log says the workers were capped"
