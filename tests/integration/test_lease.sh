#!/usr/bin/env bash
# A store that silently accepts a second conditional create (as s3rver and Huawei OBS do) is
# detected by the probe at mount; the workspace falls back to one writer holding a lease:
# the second host mounts read-only with a clear message and follows the writer's changes; when
# the writer unmounts (releasing the lease), the other host can write.
# The file store's `?conditional=ignore` makes it behave like such a store.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store

rfs_format A
url="$(rfs_store A)?conditional=ignore"
RFS_STORE_URL[A]=$url
RFS_STORE_URL[B]=$url
rfs_mount A
a=$(rfs_mp A) b=$(rfs_mp B)
echo "from A" >"$a/x"
grep -q "single-writer lease" "$(rfs_logfile A)" || fail "A's log does not say the store lacks conditional create"

step "a second host mounts read-only and says why"
rfs_mount B
out=$(cat "$WORK"/B/mount.*.out)
[[ $out == *"READ-ONLY"* && $out == *"writer lease"* ]] || fail "B's mount did not explain the read-only fallback: $out"
for ((i = 0; i < 50; i++)); do [ "$(cat "$b/x" 2>/dev/null)" = "from A" ] && break; sleep 0.1; done
assert_eq "from A" "$(cat "$b/x")" "B follows A's changes"
if sh -c 'echo no >"$1"' _ "$b/y" 2>"$WORK/erofs"; then fail "B could write without the lease"; fi
assert_match "read-only file system" "$WORK/erofs" "B's write error"

step "after A unmounts, B (remounted) holds the lease and writes"
rfs_umount A
rfs_umount B
rfs_mount B
echo "from B" >"$b/y"
rfs_umount B
rfs_mount A
assert_eq "from B" "$(cat "$a/y")" "A sees what B wrote with the lease"
rfs_umount A

step "format --meta: the log on a store with conditional create lets both hosts write"
mkdir -p "$WORK/metastore"
rfs_format M --meta "file://$WORK/metastore"
mdir=$(rfs_store_dir M)
murl="$(rfs_store M)?conditional=ignore"
RFS_STORE_URL[M]=$murl
RFS_STORE_URL[N]=$murl
rfs_mount M
rfs_mount N
m=$(rfs_mp M) n=$(rfs_mp N)
grep -q "READ-ONLY" "$WORK"/N/mount.*.out && fail "N mounted read-only although the log store has conditional create"
echo "from M" >"$m/ma"
echo "from N" >"$n/nb" || fail "N cannot write"
for ((i = 0; i < 50; i++)); do [ -e "$m/nb" ] && [ -e "$n/ma" ] && break; sleep 0.1; done
assert_eq "from N" "$(cat "$m/nb")" "M sees N's file through the separate log"
assert_eq "from M" "$(cat "$n/ma")" "N sees M's file through the separate log"
ls "$WORK/metastore/log" | grep -q . || fail "no log records in the --meta store"
[ -e "$mdir/roamfs.json" ] || fail "test bug: $mdir is not the data store"
[ ! -e "$mdir/log" ] || fail "log records were written to the data store"
rfs_umount M
rfs_umount N
