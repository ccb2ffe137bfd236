#!/usr/bin/env bash
# Two (then three) hosts on one store: each mount has its own cache dir and host id, as two
# GPU hosts would. Checks visibility within seconds, propagation of every kind of change,
# concurrent creation in one directory, same-name conflicts kept as conflict copies, identical
# replicas after both flush, and a fresh third host that rebuilds everything from the log.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

rfs_format A
RFS_STORE_URL[B]=$(rfs_store A)
RFS_STORE_URL[C]=$(rfs_store A)
CP=(--checkpoint-every 5)  # checkpoints often, so host C below starts from one
rfs_mount A "${CP[@]}"
rfs_mount B "${CP[@]}"
a=$(rfs_mp A) b=$(rfs_mp B)

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
  local t=$1; shift
  local i
  for ((i = 0; i < t * 10; i++)); do "$@" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

manifest() {  # DIR: canonical listing: type, mode, uid, size, nlink, mtime, link target, sha256
  (cd "$1" && find . -mindepth 1 -not -name '.' -printf '%y %m %U %s %n %T@ %l %p\n' | sort -k8 |
     while read -r line; do
       p=${line##* }
       if [ -f "$p" ] && [ ! -L "$p" ]; then echo "$line $(sha256sum <"$p" | cut -c1-16)"; else echo "$line"; fi
     done)
}

step "visibility: a file closed on A is readable on B within 3 s"
head -c 100000 /dev/urandom >"$WORK/payload"
cp "$WORK/payload" "$a/first"
wait_for 3 cmp -s "$WORK/payload" "$b/first" || fail "B does not show A's file within 3 s"

step "2,000 small files created on A appear complete on B"
"$PY" - "$a/tree" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(20):
    os.makedirs(f"{root}/d{d:02}")
    for f in range(100):
        with open(f"{root}/d{d:02}/f{f:03}.py", "w") as fh:
            fh.write(f"# file {d}/{f}\nvalue = {d * 1000 + f}\n")
PY
count_b() { [ "$(find "$b/tree" -type f 2>/dev/null | wc -l)" -eq 2000 ]; }
wait_for 15 count_b || fail "B sees $(find "$b/tree" -type f | wc -l) of 2000 files after 15 s"
[ "$(cat "$b/tree/d07/f042.py")" = "$(printf '# file 7/42\nvalue = 7042')" ] || fail "content of a small file differs on B"

step "rename, unlink, chmod, xattr, symlink and hard link propagate"
mv "$a/tree/d00" "$a/tree/renamed"
rm "$a/tree/d01/f000.py"
chmod 0600 "$a/tree/d02/f000.py"
setfattr -n user.note -v hello "$a/first"
ln -s first "$a/sym"
ln "$a/first" "$a/hard"
propagated() {
  [ -d "$b/tree/renamed" ] && [ ! -e "$b/tree/d00" ] && [ ! -e "$b/tree/d01/f000.py" ] &&
    [ "$(stat -c %a "$b/tree/d02/f000.py")" = 600 ] &&
    [ "$(getfattr --only-values -n user.note "$b/first")" = hello ] &&
    [ "$(readlink "$b/sym")" = first ] && [ "$(stat -c %h "$b/first")" = 2 ] &&
    [ "$(stat -c %i "$b/hard")" = "$(stat -c %i "$b/first")" ]
}
wait_for 5 propagated || fail "changes made on A did not all reach B within 5 s"

step "A and B create 500 files each in one directory at once, and both append to one file"
mkdir "$a/shared"
echo base >"$a/shared/log"
wait_for 5 test -e "$b/shared/log" || fail "B does not see shared/log"
create() {  # MOUNT PREFIX
  "$PY" - "$1/shared" "$2" <<'PY'
import os, sys
d, p = sys.argv[1], sys.argv[2]
for i in range(500):
    with open(f"{d}/{p}{i:04}", "w") as fh:
        fh.write(f"{p} {i}\n")
    if i % 100 == 0:
        with open(f"{d}/{p}-own-edit", "a") as fh:
            fh.write(f"{i}\n")
PY
}
create "$a" a & pa=$!
create "$b" b & pb=$!
wait "$pa" || fail "creating files on A failed"
wait "$pb" || fail "creating files on B failed"

step "same name created on both hosts inside one sync interval: both versions are kept"
rfs_umount A
rfs_umount B
rfs_mount A --sync-interval 4000 "${CP[@]}"
rfs_mount B --sync-interval 4000 "${CP[@]}"
echo "version A" >"$a/shared/same"
echo "version B" >"$b/shared/same"

step "flush both (umount), remount, and compare the two replicas"
rfs_umount A
rfs_umount B
rfs_mount A "${CP[@]}"
rfs_mount B "${CP[@]}"
sleep 2
manifest "$a" >"$WORK/A.manifest"
manifest "$b" >"$WORK/B.manifest"
diff -u "$WORK/A.manifest" "$WORK/B.manifest" >&2 || fail "the replicas of A and B differ"
n=$(find "$a/shared" -name 'a0*' | wc -l); assert_eq 500 "$n" "files A created, seen on A"
n=$(find "$a/shared" -name 'b0*' | wc -l); assert_eq 500 "$n" "files B created, seen on A"
copies=$(cat "$a/shared"/same* | sort | tr '\n' '|')
assert_eq "version A|version B|" "$copies" "both versions of the same-name file"
ls "$a/shared" | grep -q '^same\.conflict-' || fail "no conflict copy named same.conflict-HOST-TIME"
[ "$(stat -c %h "$a/tree")" = "$(( 2 + $(find "$a/tree" -mindepth 1 -maxdepth 1 -type d | wc -l) ))" ] ||
  fail "directory link count of tree is not 2 + subdirectories"

step "a third host with an empty cache starts from a checkpoint plus the log after it"
if [ "$ROAMFS_TEST_STORE" = file ]; then
  n=$(ls "$(rfs_store_dir A)/snap/" | grep -c '\.db\.lz4$' || true)
  [ "$n" -ge 1 ] || fail "no checkpoint in the store's snap/"
  [ "$n" -le 3 ] || fail "$n checkpoints in snap/: old ones are not pruned (3 are kept)"
fi
rfs_mount C
grep -q "bootstrapped metadata from checkpoint snap/" "$(rfs_logfile C)" ||
  fail "host C did not start from a checkpoint (see its log)"
manifest "$(rfs_mp C)" >"$WORK/C.manifest"
diff -u "$WORK/A.manifest" "$WORK/C.manifest" >&2 || fail "host C's replica differs from A's"
cmp "$WORK/payload" "$(rfs_mp C)/first" || fail "host C reads different bytes"
rfs_umount C
rfs_umount A
rfs_umount B
