#!/usr/bin/env bash
# roamfs warmup: after it, every block of the named files is on the local SSD (proved by hiding
# the store's packs and reading everything back), a second run fetches nothing, and a cache too
# small for the files is reported with a non-zero exit; next to a reader of the same file, each
# block is fetched once.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
rfs_require_file_store

rfs_format ws
rfs_mount ws
mp=$(rfs_mp ws)
mkdir -p "$mp/env/lib" "$mp/model"
head -c $((24 << 20)) /dev/urandom >"$mp/model/weights.bin"
for i in $(seq 1 300); do echo "module $i" >"$mp/env/lib/m$i.py"; done
"$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"   # their own packs
# one directory whose files land in five different packs (a flush each)
mkdir -p "$mp/pkg"
for i in 1 2 3 4 5; do
  head -c 20000 /dev/urandom >"$mp/pkg/part$i.bin"
  "$ROAMFS" sync "$mp" --wait >/dev/null || fail "sync --wait failed"
done
(cd "$mp" && find ./env ./model -type f -exec sha256sum {} + | sort -k2) >"$WORK/sums"
(cd "$mp" && sha256sum pkg/*) >"$WORK/pkgsums"
packs=$(find "$(rfs_store_dir ws)/data" -type f | wc -l)
[ "$packs" -ge 6 ] || fail "expected the pkg files in separate packs, found $packs packs in all"
rfs_umount ws

step "a cold read of one small file prefetches its directory's other files, from other packs too"
rfs_new_cache ws
rfs_mount ws
cat "$mp/pkg/part3.bin" >/dev/null
cache_blocks() { "$ROAMFS" status "$mp" --json | sed -n 's/.*"cache_blocks": *\([0-9]*\).*/\1/p'; }
for ((i = 0; i < 50; i++)); do [ "$(cache_blocks)" -ge 5 ] && break; sleep 0.1; done
store=$(rfs_store_dir ws)
mv "$store/data" "$store/data.hidden"
ok=1
for i in 1 2 4 5; do
  [ "$(sha256sum <"$mp/pkg/part$i.bin" | cut -d' ' -f1)" = "$(grep "pkg/part$i.bin" "$WORK/pkgsums" | cut -d' ' -f1)" ] || ok=0
done
mv "$store/data.hidden" "$store/data"
[ "$ok" = 1 ] || fail "the other files of pkg/ were not prefetched (cache entries: $(cache_blocks))"
rfs_umount ws

step "warmup on a fresh cache fetches everything"
rfs_new_cache ws
rfs_mount ws
"$ROAMFS" warmup "$mp/env" "$mp/model" --jobs 8 >"$WORK/w1.out" 2>&1 || fail "warmup exited $? ($(cat "$WORK/w1.out"))"
cat "$WORK/w1.out" >&2
assert_match "301 files" "$WORK/w1.out" "warmup counts the files"
assert_match "0 were cached already" "$WORK/w1.out" "first warmup starts from an empty cache"

step "a second warmup fetches nothing"
"$ROAMFS" warmup "$mp/env" "$mp/model" >"$WORK/w2.out" 2>&1 || fail "second warmup exited $?"
assert_match " 0 fetched" "$WORK/w2.out" "second warmup"

step "with the store's packs hidden, every file still reads back from the cache"
store=$(rfs_store_dir ws)
mv "$store/data" "$store/data.hidden"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
(cd "$mp" && find ./env ./model -type f -exec sha256sum {} + | sort -k2) >"$WORK/sums.after" || true
mv "$store/data.hidden" "$store/data"
diff -u "$WORK/sums" "$WORK/sums.after" >&2 || fail "files read differently (or failed) without the store: warmup missed blocks"
rfs_umount ws

step "a cache smaller than the files: warmup says what did not fit and exits 1"
rfs_new_cache ws
rfs_mount ws --cache-size 8M
rc=0; "$ROAMFS" warmup "$mp/model" >"$WORK/w3.out" 2>&1 || rc=$?
cat "$WORK/w3.out" >&2
assert_eq 1 "$rc" "warmup exit code when the files exceed the cache"
assert_match "did not fit in the cache" "$WORK/w3.out" "warmup's message about the cache size"
cmp <(sha256sum <"$mp/model/weights.bin" | cut -d' ' -f1) <(grep weights "$WORK/sums" | cut -d' ' -f1) ||
  fail "weights.bin reads wrong through a small cache"
rfs_umount ws

step "warmup next to a reader of the same file: each block crosses once"
# a store whose GETs take 200 ms, so the warmup's fetches and the reader's overlap
RFS_STORE_URL[ws]="file://$(rfs_store_dir ws)?latency_ms=200"
rfs_new_cache ws
rfs_mount ws
"$ROAMFS" warmup "$mp/model" --jobs 8 >"$WORK/w4.out" 2>&1 &
wpid=$!
cmp <(sha256sum <"$mp/model/weights.bin" | cut -d' ' -f1) <(grep weights "$WORK/sums" | cut -d' ' -f1) ||
  fail "weights.bin reads wrong while warmup runs"
wait $wpid || fail "warmup next to a reader exited $? ($(cat "$WORK/w4.out"))"
in=$(rfs_status_field "$mp" bytes_in) misses=$(rfs_status_field "$mp" cache_misses)
# they overlapped: the reader waited for the store at least once (else this proves nothing)
[ "$misses" -ge 1 ] || fail "the reader found every block cached: warmup was done before it started"
# 24 MiB of incompressible blocks; a block fetched twice would add 4 MiB
[ "$in" -lt $((25 << 20)) ] || fail "warmup and a reader fetched $in bytes for a 24 MiB file: blocks were fetched twice"
step "ok: $in bytes in, the reader missed $misses times"
rfs_umount ws
