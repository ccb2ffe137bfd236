#!/usr/bin/env bash
# The everyday commands through a real mount: status (table, --json, exit codes), sync --wait,
# umount refusing while files are open, a non-root user on an allow_other mount (as in a
# container run with --user), and mount(8) integration: `mount -t roamfs` and an fstab line.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

rfs_format ws
mkdir -p "$WORK/ws"
chmod 0755 "$WORK" "$WORK/ws"
rfs_mount ws -o allow_other --flush-interval 60000
mp=$(rfs_mp ws)

step "status: synced after sync --wait, exit 0, stable --json fields"
echo hello >"$mp/hello"
"$ROAMFS" sync "$mp" --wait >"$WORK/sync1.out" 2>&1 || fail "sync --wait exited $? ($(cat "$WORK/sync1.out"))"
rc=0; "$ROAMFS" status "$mp" >"$WORK/status.txt" || rc=$?
cat "$WORK/status.txt" >&2
assert_eq 0 "$rc" "status exit code when everything is synced"
awk 'length > 100 { exit 1 }' "$WORK/status.txt" || fail "status output is wider than 100 columns"
rc=0; "$ROAMFS" status "$mp" --json >"$WORK/status.json" || rc=$?
assert_eq 0 "$rc" "status --json exit code"
"$PY" - "$WORK/status.json" "$mp" <<'PY' || fail "status --json is not what docs/cli.md promises"
import json, sys
doc = json.load(open(sys.argv[1]))
m = doc["mounts"][0]
assert m["mountpoint"] == sys.argv[2], m
assert m["state"] == "synced", m
for k in ("store", "host_id", "applied_seq", "head_seq", "pending_changes", "dirty_bytes",
          "dirty_files", "cache_used", "cache_limit", "req_get", "req_put", "estimated_cost_usd",
          "hosts", "last_error", "conflicts"):
    assert k in m, k
assert m["applied_seq"] == m["head_seq"] >= 1, m
assert m["req_put"] > 0, m
PY

step "status: pending while a file is being written (exit 1), synced after sync --wait"
"$PY" -c "
import os, time
fd = os.open('$mp/big', os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, os.urandom(12 << 20))
open('$WORK/written', 'w').close()
time.sleep(30)
" & writer=$!
for ((i = 0; i < 100; i++)); do [ -e "$WORK/written" ] && break; sleep 0.1; done
rc=0; "$ROAMFS" status "$mp" --json >"$WORK/pending.json" || rc=$?
assert_eq 1 "$rc" "status exit code with data pending"
"$PY" -c "import json,sys; m=json.load(open('$WORK/pending.json'))['mounts'][0]; assert m['state']=='pending' and m['dirty_bytes']>=12<<20, m" ||
  fail "status --json does not report the pending 12 MiB"
"$ROAMFS" sync "$mp" --wait --timeout 120 >"$WORK/sync2.out" 2>&1 || fail "sync --wait failed: $(cat "$WORK/sync2.out")"
grep -q "everything is in the store" "$WORK/sync2.out" || fail "sync --wait did not confirm"
rc=0; "$ROAMFS" status "$mp" >/dev/null || rc=$?
assert_eq 0 "$rc" "status exit code after sync --wait (file still open)"

step "umount refuses while a file is open, works after it is closed"
rc=0; "$ROAMFS" umount "$mp" >"$WORK/busy.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "umount succeeded with a file open"
assert_match "still open" "$WORK/busy.out" "umount's message for an open file"
mountpoint -q "$mp" || fail "the refused umount unmounted anyway"
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null || true

step "status of something that is not a roamfs mount fails clearly"
mkdir -p "$WORK/plain"
rc=0; "$ROAMFS" status "$WORK/plain" >"$WORK/notmounted.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "status of a plain directory exited 0"
assert_match "no running roamfs mount" "$WORK/notmounted.out" "status message for a plain directory"

step "a non-root user (uid 65534) on the allow_other mount, with normal permission checks"
mkdir "$mp/userdir"; chown 65534:65534 "$mp/userdir"
echo "root only" >"$mp/rootfile"; chmod 0644 "$mp/rootfile"
echo "secret" >"$mp/secret"; chmod 0600 "$mp/secret"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
as_nobody sh -c "echo mine > '$mp/userdir/file'" || fail "uid 65534 cannot write in its own directory"
assert_eq mine "$(as_nobody cat "$mp/userdir/file")" "uid 65534 reads its file back"
[ "$(stat -c %u "$mp/userdir/file")" = 65534 ] || fail "the new file is not owned by uid 65534"
assert_eq "root only" "$(as_nobody cat "$mp/rootfile")" "uid 65534 reads a 0644 file"
if as_nobody sh -c "echo x >> '$mp/rootfile'" 2>/dev/null; then fail "uid 65534 appended to root's 0644 file"; fi
if as_nobody cat "$mp/secret" >/dev/null 2>&1; then fail "uid 65534 read root's 0600 file"; fi
if as_nobody touch "$mp/newfile" 2>/dev/null; then fail "uid 65534 created a file in root's 0755 directory"; fi
rfs_umount ws

step "mount -t roamfs through /sbin/mount.roamfs, and an fstab line"
made_helper=0
if [ ! -e /sbin/mount.roamfs ]; then ln -s "$ROAMFS" /sbin/mount.roamfs; made_helper=1; fi
cleanup_helper() { [ "$made_helper" = 1 ] && rm -f /sbin/mount.roamfs; return 0; }
trap 'cleanup_helper' RETURN 2>/dev/null || true
mount -t roamfs "$(rfs_store ws)" "$mp" -o "cache-dir=$WORK/ws/cache.mt,allow_other" ||
  { cleanup_helper; fail "mount -t roamfs failed"; }
assert_eq hello "$(cat "$mp/hello")" "a file read through the mount -t roamfs mount"
"$ROAMFS" umount "$mp" >/dev/null || { cleanup_helper; fail "umount after mount -t failed"; }
# mount -f (fake): mount(8) goes through the helper but nothing may be mounted
/sbin/mount.roamfs "$(rfs_store ws)" "$mp" -f -o "cache-dir=$WORK/ws/cache.mt" ||
  { cleanup_helper; fail "mount.roamfs -f failed"; }
mountpoint -q "$mp" && { cleanup_helper; fail "mount.roamfs -f (fake) mounted"; }
echo "$(rfs_store ws) $mp roamfs cache-dir=$WORK/ws/cache.fstab,_netdev,noauto 0 0" >"$WORK/fstab"
mount --fstab "$WORK/fstab" "$mp" || { cleanup_helper; fail "mount of an fstab line failed"; }
assert_eq mine "$(cat "$mp/userdir/file")" "a file read through the fstab mount"
"$ROAMFS" umount "$mp" >/dev/null || { cleanup_helper; fail "umount after the fstab mount failed"; }
cleanup_helper
