#!/usr/bin/env bash
# Everything a file system keeps, kept: a tree with modes (setuid/setgid/sticky/000), owners,
# nanosecond mtimes (also on a symlink and past 2038), an atime, hard links, symlinks (relative,
# absolute, dangling, 1000 chars, to a dir), xattrs (binary, empty, 2 KiB), a fifo, nested and
# empty dirs, empty/one-byte/multi-block/compressible files and a sparse file with data at 5 GiB.
# A canonical manifest (type, mode, owner, size, mtime ns, nlink, hard-link group, link target,
# sha256 of every regular file, every xattr) must be identical
#   1. after umount + mount with the same cache,
#   2. after umount + mount with a brand-new empty cache (everything from the store),
#   3. after SIGKILL of the daemon (files written with fsync just before), `fusermount3 -uz` and
#      a mount with the same cache dir: every fsynced byte is there,
#   4. after umount of that and a mount with another empty cache: what staging held was uploaded.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v setfattr >/dev/null || fail "setfattr missing (apt-get install attr)"
[ -n "$PY" ] || fail "python3 not found"
export TZ=UTC

GiB=$((1024 * 1024 * 1024))
SPARSE_AT=$((5 * GiB))
ATIME='2002-03-04 05:06:07.123456789 +0000'

rfs_format ws
rfs_mount ws
mp=$(rfs_mp ws)
t=$mp/tree

step "building the tree"
mkdir -p "$t"/d1/d2/d3 "$t"/empty "$t"/sticky "$t"/crash "$t"/nosync
: >"$t/empty-file"
printf x >"$t/one-byte"
head -c 4096 /dev/urandom >"$t/d1/page"
head -c $((5 * 1024 * 1024 + 3)) /dev/urandom >"$t/d1/d2/big"    # more than one 4 MiB block
head -c 100000 /dev/zero >"$t/zeros"                              # compresses to nothing
seq 1 200000 >"$t/d1/text"                                        # compresses well
printf 'secret\n' >"$t/mode000"
# modes
chmod 0600 "$t/one-byte"
chmod 4755 "$t/d1/page"
chmod 2710 "$t/d1/d2"
chmod 1777 "$t/sticky"
chmod 0000 "$t/mode000"
chmod 0444 "$t/zeros"
# owners
chown 1234:5678 "$t/d1/text"
chown 99:100 "$t/d1"
# hard links: three names for one inode, in three directories
ln "$t/d1/page" "$t/hl1"
ln "$t/d1/page" "$t/d1/d2/d3/hl2"
# symlinks
ln -s d1/text "$t/sl-rel"
ln -s /etc/hostname "$t/sl-abs"
ln -s does/not/exist "$t/sl-dangling"
ln -s "$(printf 'L%.0s' {1..1000})" "$t/sl-long"
ln -s d1 "$t/sl-dir"
chown -h 4321:8765 "$t/sl-rel"
# xattrs
setfattr -n user.color -v blue "$t/d1/text"
setfattr -n user.bin -v 0x00ff10ee00 "$t/one-byte"
setfattr -n user.empty "$t/one-byte"
setfattr -n user.big -v "0s$(head -c 2048 /dev/urandom | base64 -w0)" "$t/d1"
setfattr -n user.on-dir -v 'a value with spaces' "$t/empty"
# fifo
mkfifo -m 0640 "$t/fifo"
# sparse: 4 KiB of data at 5 GiB, nothing before it
dd if=/dev/urandom of="$t/sparse" bs=4096 count=1 seek=$SPARSE_AT oflag=seek_bytes status=none
# times (last, so that nothing changes them afterwards)
printf 'never read\n' >"$t/noread-atime"
touch -a -d "$ATIME" "$t/noread-atime"
touch -m -d '2003-04-05 06:07:08.000000001' "$t/noread-atime"
touch -m -d '2001-02-03 04:05:06.123456789' "$t/d1/text"
touch -m -d '2040-06-07 08:09:10.5' "$t/d1/d2/big"
touch -m -d '1970-01-01 00:00:01' "$t/zeros"
touch -h -m -d '1999-12-31 23:59:59.999999999' "$t/sl-rel"
for d in d1/d2/d3 d1/d2 d1 empty sticky crash nosync .; do
  touch -m -d '2010-10-10 10:10:10.101010101' "$t/$d"
done

# manifest: the canonical description of the tree under $t, on stdout.
manifest() {
  local f
  (
    cd "$t"
    # path type mode uid:gid size mtime nlink hardlink-group link-target
    find . -printf '%p\t%y\t%#m\t%U:%G\t%s\t%T@\t%n\t%i\t%l\n' | sort |
      awk -F'\t' -v OFS='\t' '{ if (!($8 in grp)) grp[$8] = $1; $8 = "=" grp[$8]; print }'
    # content of every regular file except the two handled below
    find . -type f ! -name sparse ! -name 'noread-*' -print0 | sort -z | xargs -0 sha256sum |
      sed 's/^\([0-9a-f]*\)  \(.*\)$/\2\tsha256\t\1/'
    # the sparse file: size, a hole at the start, a hole at 2.5 GiB, the data at 5 GiB
    printf './sparse\thead\t%s\n' "$(dd if=sparse bs=1M count=1 status=none | sha256sum | cut -c1-64)"
    printf './sparse\tmid\t%s\n' "$(dd if=sparse bs=1M count=1 skip=$((SPARSE_AT / 2)) iflag=skip_bytes status=none | sha256sum | cut -c1-64)"
    printf './sparse\ttail\t%s\n' "$(dd if=sparse bs=1M skip=$SPARSE_AT iflag=skip_bytes status=none | sha256sum | cut -c1-64)"
    # xattrs, one line each, in a stable order
    find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex -- 2>/dev/null |
      awk '/^# file: / { f = substr($0, 9); next } NF { print "./" f "\txattr\t" $0 }' | sed 's|^\./\./|./|' | sort
  )
  # noread-atime's atime (never opened, so nothing may have moved it)
  printf './noread-atime\tatime\t%s\n' "$(stat -c %x "$t/noread-atime")"
}

# check_manifest EXPECTED WHEN [FILTER-REGEX]: the tree's manifest equals EXPECTED, except lines
# matching FILTER (if given) on both sides.
check_manifest() {
  local exp=$1 when=$2 filter=${3:-'^$'} got
  got="$WORK/manifest.$(date +%s%N)"
  manifest >"$got"
  if ! diff -u <(grep -Ev "$filter" "$exp") <(grep -Ev "$filter" "$got") >"$got.diff"; then
    head -n 60 "$got.diff" >&2
    fail "manifest differs $when (expected $exp, got $got)"
  fi
  step "ok: manifest identical $when ($(wc -l <"$exp") lines)"
}

m0=$WORK/manifest.0
manifest >"$m0"
# Sanity of the manifest itself: it must have seen what we made.
grep -q $'^./d1/page\tf\t04755\t0:0\t4096\t' "$m0" || fail "manifest lacks the setuid 4 KiB file: $(grep '^./d1/page' "$m0")"
grep -q $'^./d1/d2/d3/hl2\tf\t.*\t3\t=./d1/d2/d3/hl2' "$m0" || fail "hard link group not seen: $(grep hl2 "$m0")"
[ "$(grep -c $'\t=./d1/d2/d3/hl2\t' "$m0")" = 3 ] || fail "expected 3 names in the hard-link group"
grep -q $'^./d1/text\tf\t0644\t1234:5678\t1288895\t981173106.1234567890\t' "$m0" || fail "owner/size/mtime of d1/text: $(grep '^./d1/text' "$m0")"
grep -q $'^./fifo\tp\t0640\t' "$m0" || fail "fifo: $(grep '^./fifo' "$m0")"
grep -q $'^./sticky\td\t01777\t' "$m0" || fail "sticky dir: $(grep '^./sticky' "$m0")"
grep -q $'^./sparse\tf\t0644\t0:0\t5368713216\t' "$m0" || fail "sparse size: $(grep -P '^./sparse\tf' "$m0")"
grep -q $'^./sl-long\tl\t0777\t.*\tL\\{1000\\}$' "$m0" || fail "1000-char symlink target"
grep -q $'^./one-byte\txattr\tuser.bin=0x00ff10ee00$' "$m0" || fail "binary xattr: $(grep one-byte "$m0")"
grep -q $'^./one-byte\txattr\tuser.empty' "$m0" || fail "empty xattr missing: $(grep one-byte "$m0")"
grep -q $'^./d1/d2/big\tf\t.*\t2222669350.5000000000\t' "$m0" || fail "post-2038 mtime: $(grep '^./d1/d2/big' "$m0")"
assert_eq "$ATIME" "$(stat -c %x "$t/noread-atime")" "atime set with touch -a"
[ "$(dd if="$t/sparse" bs=1M count=1 status=none | tr -d '\0' | wc -c)" = 0 ] || fail "the sparse file's hole is not zeros"
step "manifest: $(wc -l <"$m0") lines"

rfs_umount ws
rfs_mount ws
check_manifest "$m0" "after umount + mount with the same cache"
rfs_remount_empty ws
check_manifest "$m0" "after umount + mount with an empty cache"

# --- crash: SIGKILL right after fsync ------------------------------------------------------------
step "writing with fsync, then SIGKILL"
head -c $((1024 * 1024 + 7)) /dev/urandom >"$WORK/a.src"
dd if="$WORK/a.src" of="$t/crash/a" bs=64k conv=fsync status=none || fail "dd conv=fsync to the mount failed"
head -c 200001 /dev/urandom >"$WORK/b.src"
"$PY" - "$WORK/b.src" "$t/crash/b" "$t/crash" <<'PY' || fail "python write+fchmod+fsync failed"
import os, sys
src, dst, d = sys.argv[1:]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
for i in range(0, len(data), 4099):
    os.write(fd, data[i:i + 4099])
os.fchmod(fd, 0o640)
os.fsync(fd)
os.close(fd)
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
PY
# rewrite 1000 bytes across the 4 MiB block boundary of an existing file, fsynced
dd if=/dev/urandom of="$t/d1/d2/big" bs=1000 count=1 seek=$((4 * 1024 * 1024 - 500)) oflag=seek_bytes conv=notrunc,fsync status=none
# and one file that is only written and closed, no fsync: staging holds it
head -c 300000 /dev/urandom >"$WORK/c.src"
cp "$WORK/c.src" "$t/nosync/c"
m1=$WORK/manifest.1
manifest >"$m1"
grep -q $'^./crash/b\tf\t0640\t' "$m1" || fail "fchmod before fsync not visible: $(grep crash/b "$m1")"
{ cmp "$WORK/a.src" "$t/crash/a" && cmp "$WORK/b.src" "$t/crash/b"; } || fail "fsynced files differ before the crash"

rfs_kill9 ws
rfs_mount ws     # same cache dir: the daemon finds its staging and its metadata DB
nosync='^\./nosync(/|\s)'
check_manifest "$m1" "after SIGKILL + mount with the same cache (every fsynced byte)" "$nosync"
assert_same_file "$WORK/a.src" "$t/crash/a" "crash/a (dd conv=fsync) after SIGKILL"
assert_same_file "$WORK/b.src" "$t/crash/b" "crash/b (python os.fsync) after SIGKILL"
if ! cmp -s "$WORK/c.src" "$t/nosync/c" 2>/dev/null; then
  note "nosync/c (written, closed, not fsynced) did not survive SIGKILL intact: $(stat -c %s "$t/nosync/c" 2>&1) bytes (allowed)"
fi
m2=$WORK/manifest.2
manifest >"$m2"

rfs_remount_empty ws
# What the recovered daemon showed, staging included, must all have reached the store.
check_manifest "$m2" "after the recovered mount's umount + mount with an empty cache"
check_manifest "$m1" "(fsynced state) after the crash and an empty-cache mount" "$nosync"
rfs_umount ws
