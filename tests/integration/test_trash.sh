#!/usr/bin/env bash
# The trash: a deleted (or overwritten-by-rename) file waits in MOUNT/.trash, readable, and is
# restored by moving it back; other hosts see the same trash; entries expire after
# --trash-days; unlink inside .trash deletes for good; --trash-days 0 turns it off.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

rfs_format A
RFS_STORE_URL[B]=$(rfs_store A)
rfs_mount A --trash-days 0.0002   # about 17 s
rfs_mount B --trash-days 0.0002
a=$(rfs_mp A) b=$(rfs_mp B)

step "rm puts the file in .trash, invisible in listings, content intact"
mkdir "$a/work"
head -c 300000 /dev/urandom >"$WORK/data"
cp "$WORK/data" "$a/work/notes.bin"
echo old >"$a/work/target"; echo new >"$a/work/source"
rm "$a/work/notes.bin"
mv "$a/work/source" "$a/work/target"   # the old target goes to the trash too
[ ! -e "$a/work/notes.bin" ] || fail "deleted file still in its directory"
ls -a "$a" | grep -q '^\.trash$' && fail ".trash shows up in the root listing"
t=$(ls "$a/.trash" | grep '^notes\.bin\.deleted-') || fail "deleted file not in .trash: $(ls "$a/.trash")"
cmp "$WORK/data" "$a/.trash/$t" || fail "trashed file reads differently"
ls "$a/.trash" | grep -q '^target\.deleted-' || fail "file replaced by rename is not in .trash"

step "another host sees the same trash"
for ((i = 0; i < 50; i++)); do [ -e "$b/.trash/$t" ] && break; sleep 0.1; done
cmp "$WORK/data" "$b/.trash/$t" || fail "host B does not see the trashed file"

step "mv restores it (on host B), and everyone sees it back"
mv "$b/.trash/$t" "$b/work/notes.bin"
cmp "$WORK/data" "$b/work/notes.bin" || fail "restored file differs"
for ((i = 0; i < 50; i++)); do [ -e "$a/work/notes.bin" ] && break; sleep 0.1; done
cmp "$WORK/data" "$a/work/notes.bin" || fail "host A does not see the restored file"
[ "$(stat -c %h "$a/work/notes.bin")" = 1 ] || fail "restored file's link count is not 1"

step "unlink inside .trash deletes for good; nothing can be created there"
tt=$(ls "$a/.trash" | grep '^target\.deleted-')
rm "$a/.trash/$tt"
[ ! -e "$a/.trash/$tt" ] || fail "unlink in .trash did not delete"
if touch "$a/.trash/new" 2>/dev/null; then fail "created a file inside .trash"; fi

step "entries expire"
rm "$a/work/notes.bin"
for ((i = 0; i < 400; i++)); do [ -z "$(ls "$a/.trash")" ] && break; sleep 0.1; done
[ -z "$(ls "$a/.trash")" ] || fail "trash not purged after its retention: $(ls "$a/.trash")"
rfs_umount A
rfs_umount B

step "--trash-days 0: no trash"
rfs_mount A --trash-days 0
echo x >"$a/gone"; rm "$a/gone"
[ ! -e "$a/.trash" ] || fail ".trash exists with the trash turned off"
rfs_umount A
