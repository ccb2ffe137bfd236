#!/usr/bin/env bash
# A big file is stored as several packs uploaded in parallel (fs/data.c: up to three full
# packs on their way while the next is sealed). 100 MiB makes at least four packs. While the
# store refuses new objects (its data/ directory replaced by a plain file), the flush fails:
# the data stays staged, status names the failed upload and counts the dirty bytes, nothing
# half-done is committed. Once the store takes writes again, `sync --wait` uploads it and a
# new host (empty cache) reads it back intact.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store

rfs_format bw
rfs_mount bw
mp=$(rfs_mp bw) sd=$(rfs_store_dir bw)
status_field() { rfs_status_field "$mp" "$1"; }

step "the store refuses new packs: a 100 MiB file stays staged, status says why"
rm -rf "$sd/data" && : >"$sd/data"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/big.src"
cp "$WORK/big.src" "$mp/big"
err=""
for ((i = 0; i < 100; i++)); do
  err=$(status_field last_error)
  [ -n "$err" ] && [ "$err" != None ] && break
  sleep 0.2
done
case $err in *pack*) ;; *) fail "status does not report the failed pack upload (last_error: '$err')" ;; esac
dirty=$(status_field dirty_bytes)
[ "$dirty" -ge $((100 * 1024 * 1024)) ] || fail "dirty_bytes is $dirty while the upload fails (want the whole file)"
rc=0; "$ROAMFS" sync --wait --timeout 60 "$mp" >/dev/null 2>"$WORK/sync.err" || rc=$?
[ "$rc" -ne 0 ] || fail "sync --wait succeeded although the store refuses new objects"
grep -q "still pending" "$WORK/sync.err" && fail "sync --wait waited instead of reporting the failed upload"
grep -q "pack" "$WORK/sync.err" || fail "sync --wait does not say which upload failed: $(cat "$WORK/sync.err")"

step "the store takes writes again: sync --wait uploads it in several packs"
rm -f "$sd/data"
"$ROAMFS" sync --wait "$mp" >/dev/null || fail "sync --wait failed after the store recovered"
assert_eq 0 "$(status_field dirty_bytes)" "dirty bytes after sync --wait"
assert_eq "" "$(status_field last_error)" "last_error once the packs are stored"
packs=$(find "$sd/data" -type f ! -name '.tmp-*' | wc -l)
[ "$packs" -ge 4 ] || fail "100 MiB went into $packs pack(s); want at least 4 (32 MiB each)"
[ -z "$(find "$sd/data" -name '.tmp-*')" ] || fail "temporary files left in the store: $(find "$sd/data" -name '.tmp-*')"

step "a new host with an empty cache reads the file back intact"
rfs_remount_empty bw
assert_eq "$(sha256sum <"$WORK/big.src" | cut -d' ' -f1)" "$(sha256sum <"$mp/big" | cut -d' ' -f1)" "sha256 of big"
rfs_umount bw
