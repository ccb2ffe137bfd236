#!/usr/bin/env bash
# roamfs fsck and roamfs gc on a real store written through a real mount:
#   1. files written in separate mount sessions (so each session's packs belong to known files),
#      some of them deleted in a later session; `roamfs fsck` exits 0 and says "clean";
#   2. `roamfs gc` with the default grace period and `--dry-run --grace 0` delete nothing;
#      `roamfs gc --grace 0` deletes exactly the deleted files' packs, and fsck stays clean;
#   3. a mount with a brand-new empty cache reads every remaining file back identical (every
#      byte comes from the store, so nothing live was collected);
#   4. one pack file deleted from the store: fsck exits 1 naming the pack and the file's path;
#      a byte flipped in another pack: fsck exits 1 naming that pack and its file;
#   5. fsck of something that is not a workspace exits 2.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store # deletes and corrupts pack files directly

MiB=$((1024 * 1024))
rfs_format ws
store=$(rfs_store ws)
sdir=$(rfs_store_dir ws)
mp=$(rfs_mp ws)
orig=$WORK/orig
mkdir -p "$orig"

packs() { if [ -d "$sdir/data" ]; then find "$sdir/data" -type f ! -name '.tmp-*' -printf '%f\n'; fi | sort; }
npacks() { packs | wc -l; }
pack_file() { echo "$sdir/data/${1:0:2}/$1"; }

# session NAME CMDS: run CMDS (a function) in a mount session; NAME.packs lists the packs it added.
session() {
  local name=$1; shift
  packs >"$WORK/before"
  rfs_mount ws
  "$@"
  rfs_umount ws
  packs | comm -13 "$WORK/before" - >"$WORK/$name.packs"
  step "session '$name' added $(wc -l <"$WORK/$name.packs") pack(s): $(tr '\n' ' ' <"$WORK/$name.packs")"
}

# roamfs_rc OUT CMD...: run a roamfs command, keep its output in OUT, show it, print its exit code.
roamfs_rc() {
  local out=$1 rc=0; shift
  timeout -k 5 300 "$ROAMFS" "$@" >"$out" 2>&1 </dev/null || rc=$?
  sed 's/^/    | /' "$out" >&2
  echo "$rc"
}

write_k1() { mkdir -p "$mp/keep"; head -c $((3 * MiB)) /dev/urandom >"$orig/k1"; cp "$orig/k1" "$mp/keep/k1"; }
write_k2() { mkdir -p "$mp/keep/sub"; head -c $((MiB + 12345)) /dev/urandom >"$orig/k2"; cp "$orig/k2" "$mp/keep/sub/k2"; }
write_rest() {
  seq 1 300000 >"$orig/text"; cp "$orig/text" "$mp/keep/text"
  for i in $(seq 1 20); do echo "small $i" >"$mp/keep/sub/s$i"; echo "small $i" >"$orig/s$i"; done
  head -c $((5 * MiB + 7)) /dev/urandom >"$orig/big"; cp "$orig/big" "$mp/keep/big"  # two blocks
}
write_victims() {
  mkdir -p "$mp/tmp/deeper"
  head -c $((2 * MiB)) /dev/urandom >"$mp/tmp/v1"
  head -c $((5 * MiB)) /dev/urandom >"$mp/tmp/deeper/v2"
}
# deleted files wait in the trash (their packs stay live), so empty it too
delete_victims() { rm -r "$mp/tmp"; rm -f "$mp"/.trash/*; }

session k1 write_k1
session k2 write_k2
session rest write_rest
session victims write_victims
session delete delete_victims
[ "$(wc -l <"$WORK/k1.packs")" -eq 1 ] || fail "expected one pack for keep/k1"
[ "$(wc -l <"$WORK/k2.packs")" -eq 1 ] || fail "expected one pack for keep/sub/k2"
[ -s "$WORK/victims.packs" ] || fail "the victims' session stored no pack"
pk1=$(cat "$WORK/k1.packs") pk2=$(cat "$WORK/k2.packs")

step "fsck of a healthy store exits 0"
rc=$(roamfs_rc "$WORK/fsck1.out" fsck "$store")
assert_eq 0 "$rc" "roamfs fsck exit status on a healthy store"
assert_match '^clean$' "$WORK/fsck1.out" "fsck verdict"
assert_match "blocks \(([1-9][0-9]*) read and verified\)" "$WORK/fsck1.out" "fsck read the blocks"

before=$(npacks)
step "gc with the default grace period keeps everything (all packs are minutes old)"
rc=$(roamfs_rc "$WORK/gc0.out" gc "$store")
assert_eq 0 "$rc" "roamfs gc exit status"
assert_eq "$before" "$(npacks)" "pack count after gc with the default grace"
step "gc --dry-run --grace 0 reports but deletes nothing"
rc=$(roamfs_rc "$WORK/gc1.out" gc "$store" --dry-run --grace 0)
assert_eq 0 "$rc" "roamfs gc --dry-run exit status"
assert_match "would free $(wc -l <"$WORK/victims.packs") object" "$WORK/gc1.out" "dry-run count"
assert_eq "$before" "$(npacks)" "pack count after a dry run"

step "gc --grace 0 deletes exactly the deleted files' packs"
rc=$(roamfs_rc "$WORK/gc2.out" gc "$store" --grace 0)
assert_eq 0 "$rc" "roamfs gc --grace 0 exit status"
after=$(npacks)
assert_eq "$((before - $(wc -l <"$WORK/victims.packs")))" "$after" "pack count after gc --grace 0"
while read -r p; do [ ! -e "$(pack_file "$p")" ] || fail "pack $p of a deleted file survived gc"; done <"$WORK/victims.packs"
for s in k1 k2 rest; do
  while read -r p; do [ -e "$(pack_file "$p")" ] || fail "gc deleted pack $p of live files ($s)"; done <"$WORK/$s.packs"
done
assert_match "freed $(wc -l <"$WORK/victims.packs") object" "$WORK/gc2.out" "gc summary"
rc=$(roamfs_rc "$WORK/gc3.out" gc "$store" --grace 0)
assert_eq "$after" "$(npacks)" "a second gc --grace 0 has nothing left to delete"
rc=$(roamfs_rc "$WORK/fsck2.out" fsck "$store")
assert_eq 0 "$rc" "fsck after gc"

step "every remaining file reads back identical through an empty cache"
rfs_new_cache ws
rfs_mount ws
assert_same_file "$orig/k1" "$mp/keep/k1" "keep/k1"
assert_same_file "$orig/k2" "$mp/keep/sub/k2" "keep/sub/k2"
assert_same_file "$orig/text" "$mp/keep/text" "keep/text"
assert_same_file "$orig/big" "$mp/keep/big" "keep/big"
for i in $(seq 1 20); do assert_same_file "$orig/s$i" "$mp/keep/sub/s$i" "keep/sub/s$i"; done
[ ! -e "$mp/tmp" ] || fail "deleted directory tmp is back"
rfs_umount ws

step "a pack deleted from the store: fsck exits 1 naming it and the file that loses data"
rm "$(pack_file "$pk1")"
rc=$(roamfs_rc "$WORK/fsck3.out" fsck "$store")
assert_eq 1 "$rc" "fsck exit status with a missing pack"
assert_match "pack $pk1 is missing" "$WORK/fsck3.out" "fsck names the missing pack"
assert_match "^lost: /keep/k1 \(inode [0-9]+\)" "$WORK/fsck3.out" "fsck names the file of the missing pack"

step "a byte flipped in another pack: fsck exits 1 naming it"
f=$(pack_file "$pk2")
off=$(($(stat -c %s "$f") / 3))
b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
printf "\\$(printf %03o $((b ^ 0x41)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
rc=$(roamfs_rc "$WORK/fsck4.out" fsck "$store")
assert_eq 1 "$rc" "fsck exit status with a corrupt pack"
assert_match "pack $pk2: block [0-9a-f]+ at offset [0-9]+ is corrupt" "$WORK/fsck4.out" "fsck names the corrupt pack"
assert_match "^lost: /keep/sub/k2 " "$WORK/fsck4.out" "fsck names the file of the corrupt pack"
assert_match "pack $pk1 is missing" "$WORK/fsck4.out" "the missing pack is still reported"
assert_match "2 file\(s\) lose data" "$WORK/fsck4.out" "fsck summary"

step "fsck of a directory that is not a workspace exits 2"
mkdir -p "$WORK/empty-store"
rc=$(roamfs_rc "$WORK/fsck5.out" fsck "$WORK/empty-store")
assert_eq 2 "$rc" "fsck exit status without a workspace"
rc=$(roamfs_rc "$WORK/gc4.out" gc "$WORK/empty-store")
assert_eq 2 "$rc" "gc exit status without a workspace"
