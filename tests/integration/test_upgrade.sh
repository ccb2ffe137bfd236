#!/usr/bin/env bash
# Upgrading a host and a workspace from format 1 (blocks verified by SHA-256 only) to format 2
# (blocks rows carry an XXH3-64 xsum that reads check instead):
#   - a host whose metadata database is schema 1 (blocks without xsum) and a store whose
#     roamfs.json says version 1 mount; the database is migrated (column added, NULL for the old
#     rows), and before the first record this host writes roamfs.json is rewritten as version 2
#     (same uuid) so older roamfs refuse it;
#   - the old blocks, fetched again from the store, are verified by their SHA-256: right bytes,
#     and a byte flipped in their pack is EIO, not wrong data;
#   - blocks written after the upgrade carry an xsum, in this host's replica and in a new host's;
#   - while mounted, the daemon holds meta.db exclusively (another SQLite connection is refused,
#     so it cannot delete the daemon's WAL: the daemon forks before it opens the database).
# The "version-1" state is made by rewriting what this version wrote (python3's sqlite3), which
# is exactly the schema-1 layout. Edits store files, so it runs on the file store only.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store
[ -n "$PY" ] || fail "python3 not found"

# sql DB STATEMENT...: runs statements on a SQLite database, prints the rows of the last one
sql() {
  "$PY" - "$@" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=0.5)
rows = []
for s in sys.argv[2:]:
    rows = db.execute(s).fetchall()
db.commit()
for r in rows:
    print("|".join("null" if v is None else str(v) for v in r))
PY
}

rfs_format A --block-size 65536
rfs_mount A
a=$(rfs_mp A)
head -c 300000 /dev/urandom >"$WORK/old.bin"
seq 1 20000 >"$WORK/old.txt"
cp "$WORK/old.bin" "$WORK/old.txt" "$a/"
rfs_umount A

step "turn host A and the store into what a version-1 roamfs left"
db="$(rfs_cache A)/meta.db"
sd=$(rfs_store_dir A)
uuid=$(sed -n 's/.*"uuid": "\([0-9a-f]*\)".*/\1/p' "$sd/roamfs.json")
[ -n "$uuid" ] || fail "no uuid in roamfs.json: $(cat "$sd/roamfs.json")"
sql "$db" "CREATE TABLE b1(hash BLOB PRIMARY KEY, pack TEXT NOT NULL, off INT NOT NULL, slen INT NOT NULL,
             rlen INT NOT NULL, codec INT NOT NULL) WITHOUT ROWID" \
  "INSERT INTO b1 SELECT hash, pack, off, slen, rlen, codec FROM blocks" "DROP TABLE blocks" \
  "ALTER TABLE b1 RENAME TO blocks" "CREATE INDEX blocks_pack ON blocks(pack, off)" \
  "UPDATE local SET value=1 WHERE key='schema'"
nblocks=$(sql "$db" "SELECT count(*) FROM blocks")
[ "$nblocks" -ge 5 ] || fail "expected at least 5 blocks rows, got $nblocks"
sed -i 's/"roamfs": 2/"roamfs": 1/' "$sd/roamfs.json"
grep -q '"roamfs": 1,' "$sd/roamfs.json" || fail "could not rewrite roamfs.json: $(cat "$sd/roamfs.json")"
rm -rf "$(rfs_cache A)/blocks" "$(rfs_cache A)/ranges.idx" # fetch every block from the store again

rfs_mount A
step "mounted: old files read back (blocks fetched again, checked by SHA-256); write a new file"
cmp "$WORK/old.bin" "$a/old.bin" || fail "old.bin reads differently after the upgrade"
cmp "$WORK/old.txt" "$a/old.txt" || fail "old.txt reads differently after the upgrade"
head -c 200000 /dev/urandom >"$WORK/new.bin"
cp "$WORK/new.bin" "$a/new.bin"
"$ROAMFS" sync "$a" --wait || fail "sync --wait failed"
step "the first record this host wrote upgraded roamfs.json to version 2, same uuid"
grep -q '"roamfs": 2,' "$sd/roamfs.json" || fail "roamfs.json not upgraded: $(cat "$sd/roamfs.json")"
grep -q "\"uuid\": \"$uuid\"" "$sd/roamfs.json" || fail "roamfs.json changed its uuid: $(cat "$sd/roamfs.json")"
# the daemon holds meta.db exclusively while mounted: look inside after the unmount
rfs_umount A
step "the database was migrated: schema 2, old rows without xsum, new.bin's with"
assert_eq 2 "$(sql "$db" "SELECT value FROM local WHERE key='schema'")" "schema after the mount"
assert_eq "$nblocks" "$(sql "$db" "SELECT count(*) FROM blocks WHERE xsum IS NULL")" "old rows without xsum"
nx=$(sql "$db" "SELECT count(*) FROM blocks WHERE xsum IS NOT NULL")
[ "$nx" -ge 4 ] || fail "expected the 4 blocks of new.bin with an xsum, got $nx"

step "a new host replays the log (written by this version: every row has its xsum)"
rfs_new_cache A
rfs_mount A
cmp "$WORK/old.bin" "$a/old.bin" || fail "old.bin reads differently on a new host"
cmp "$WORK/new.bin" "$a/new.bin" || fail "new.bin reads differently on a new host"
rfs_umount A
db2="$(rfs_cache A)/meta.db"
assert_eq "$(sql "$db2" "SELECT count(*) FROM blocks")" "$(sql "$db2" "SELECT count(*) FROM blocks WHERE xsum IS NOT NULL")" \
  "rows with xsum on the new host"

step "while mounted, meta.db is the daemon's alone"
rfs_mount A
out=$(sql "$db2" "SELECT count(*) FROM blocks" 2>&1) && fail "a second SQLite connection read meta.db while mounted: $out"
[[ $out == *locked* ]] || fail "expected 'database is locked', got: $out"
[ -e "$(rfs_cache A)/meta.db-wal" ] || fail "the daemon's WAL is gone after another connection tried meta.db"
rfs_umount A

step "on host A (old rows without xsum): a flipped byte in an old block is EIO, not wrong data"
RFS_CACHE_DIR[A]="$(dirname "$db")"
rm -rf "${RFS_CACHE_DIR[A]}/blocks" "${RFS_CACHE_DIR[A]}/ranges.idx"
pack=$(sql "$db" "SELECT pack FROM blocks WHERE xsum IS NULL AND rlen=65536 AND codec=0 LIMIT 1")
off=$(sql "$db" "SELECT off FROM blocks WHERE xsum IS NULL AND rlen=65536 AND codec=0 LIMIT 1")
[ -n "$pack" ] || fail "no raw 64 KiB block of old.bin among the rows without xsum"
pf=$(find "$sd/data" -type f -name "$pack*" | head -1)
[ -f "$pf" ] || fail "pack $pack not under $sd/data"
"$PY" - "$pf" "$((off + 1000))" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
PY
rfs_mount A
rc=0
cat "$a/old.bin" >"$WORK/old.read" 2>"$WORK/cat.err" || rc=$?
[ "$rc" -ne 0 ] || fail "reading old.bin with a corrupted block succeeded"
assert_match "Input/output error" "$WORK/cat.err" "reading the corrupted block"
cmp "$WORK/new.bin" "$a/new.bin" || fail "new.bin (another pack) unreadable next to the corrupted one"
rfs_umount A
