#!/usr/bin/env bash
# Randomized read/write/mmap/truncate/fallocate against an in-memory model (tests/fsx/fsx) on a
# workspace with 64 KiB blocks, so most operations straddle block boundaries. Then files written
# with dd at odd offsets (unaligned, across blocks, overwrites, holes, truncates) are compared with
# a reference copy built by the same commands on local disk: right after writing, after a clean
# remount with the same cache, and after a remount with a brand-new empty cache (every byte then
# comes from the store).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ -x "$FSX" ] || fail "fsx not built at $FSX (cmake --build $ROAMFS_BUILD)"
FSX_OPS=${FSX_OPS:-20000}
FSX_SEED=${FSX_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}

rfs_format ws --block-size 65536
rfs_mount ws
mp=$(rfs_mp ws)

step "fsx -n $FSX_OPS -S $FSX_SEED $mp/fsx"
rc=0
"$FSX" -n "$FSX_OPS" -S "$FSX_SEED" "$mp/fsx" >"$WORK/fsx.out" 2>&1 || rc=$?
tail -n 40 "$WORK/fsx.out" >&2
[ "$rc" -eq 0 ] || fail "fsx failed (exit $rc, seed $FSX_SEED; rerun with FSX_SEED=$FSX_SEED)"
grep -q "ops OK" "$WORK/fsx.out" || fail "fsx exited 0 without its 'ops OK' line"

# --- dd at odd offsets, mirrored into a local reference dir -------------------------------------
ref=$WORK/ref
mkdir -p "$ref" "$mp/dd"
head -c $((3 * 1024 * 1024 + 4099)) /dev/urandom >"$WORK/rnd"   # the data every dd copies from

# put FILE SRC_SKIP OFFSET LEN [conv]: LEN bytes from rnd at SRC_SKIP to FILE at OFFSET (no
# truncation), on the mount and in the reference.
put() {
  local f=$1 skip=$2 off=$3 len=$4 d
  for d in "$mp/dd" "$ref"; do
    dd if="$WORK/rnd" of="$d/$f" bs=65536 iflag=skip_bytes,count_bytes oflag=seek_bytes \
       skip="$skip" seek="$off" count="$len" conv=notrunc${5:+,$5} status=none \
       || fail "dd to $d/$f at $off (+$len) failed"
  done
}
trunc() {  # FILE SIZE
  truncate -s "$2" "$mp/dd/$1" || fail "truncate $1 to $2 on the mount failed"
  truncate -s "$2" "$ref/$1"
}

put a 0 12345 70001                  # inside block 0, across into block 1
put a 1000 65535 2                   # two bytes straddling the 64 KiB boundary
put a 77777 1048573 131077           # unaligned, three blocks, leaves a hole before it
put a 5 200000 333                   # overwrite inside the hole region
put b 3 1 1                          # one byte at offset 1 (byte 0 stays a hole)
put b 99 $((5 * 65536 - 1)) 65538    # from the last byte of block 4 to the first of block 6
trunc b $((5 * 65536 + 17))          # shrink into the middle of what was just written
put b 4242 $((7 * 65536 + 3)) 10     # write past EOF: zeros in between
put c 0 0 $((3 * 1024 * 1024 + 4099)) fsync  # large, unaligned tail, fsynced
put c 17 4095 8193                   # overwrite across page and block boundaries
trunc c $((2 * 1024 * 1024 + 1))     # shrink to an odd size
trunc c $((2 * 1024 * 1024 + 65536 * 3 + 7))  # grow again: the re-exposed range must be zeros
put d 31337 0 0                      # empty file
put e 123 $((64 * 1024 * 1024 - 3)) 3 # 64 MiB sparse file, 3 bytes at the end
: >"$mp/dd/f"; : >"$ref/f"           # a file made by shell redirection
printf 'tail\n' >>"$mp/dd/f"; printf 'tail\n' >>"$ref/f"

check_all() {  # WHEN
  local f
  for f in a b c d e f; do
    assert_same_file "$ref/$f" "$mp/dd/$f" "dd/$f $1"
    assert_eq "$(stat -c %s "$ref/$f")" "$(stat -c %s "$mp/dd/$f")" "size of dd/$f $1"
  done
  (cd "$ref" && sha256sum a b c d e f) >"$WORK/sums"
  (cd "$mp/dd" && sha256sum -c --quiet "$WORK/sums") || fail "sha256 mismatch $1"
  step "ok: dd files match the reference $1"
}

check_all "right after writing"
rfs_umount ws
rfs_mount ws
check_all "after a remount with the same cache"
rfs_remount_empty ws
check_all "after a remount with an empty cache"
[ ! -e "$mp/fsx/fsx.0" ] || fail "fsx's files were not removed (it removes them on success)"
rfs_umount ws
