#!/usr/bin/env bash
# Crashes at the two dangerous moments of the write path, with a second host watching:
#   after-pack-upload  data is in the store, the metadata naming it is not yet committed
#   after-log-put      the log record is in the store, local bookkeeping not yet done
# The daemon of host A SIGKILLs itself there (ROAMFS_CRASH_AT); A is mounted again with the
# same cache dir and must lose nothing that was written, apply nothing twice, and agree with B.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

rfs_format A
RFS_STORE_URL[B]=$(rfs_store A)
rfs_mount B
a=$(rfs_mp A) b=$(rfs_mp B)

manifest() {
  (cd "$1" && find . -mindepth 1 -printf '%y %m %s %n %p\n' | sort -k5 |
     while read -r line; do
       p=${line##* }
       if [ -f "$p" ]; then echo "$line $(sha256sum <"$p" | cut -c1-16)"; else echo "$line"; fi
     done)
}

for point in after-pack-upload after-log-put; do
  step "crash point $point"
  export ROAMFS_CRASH_AT=$point
  rfs_mount A
  unset ROAMFS_CRASH_AT
  # Write files until the daemon dies; record each one whose write and close succeeded.
  "$PY" - "$a/$point" "$WORK/$point.ok" <<'PY' || true
import os, sys
d, ok = sys.argv[1], sys.argv[2]
try:
    os.makedirs(d)
    with open(ok, "w") as log:
        for i in range(400):
            name = f"{d}/f{i:03}"
            data = (f"{i} " * (1 + i * 37)).encode()
            with open(name, "wb") as fh:
                fh.write(data)
                if i % 10 == 9:
                    fh.flush(); os.fsync(fh.fileno())
            log.write(f"{name}\n"); log.flush()
except OSError as e:
    print(f"writer stopped at the crash: {e}", file=sys.stderr)
PY
  rfs_crashed A "the daemon did not reach crash point $point"
  n_ok=$(wc -l <"$WORK/$point.ok")
  step "remount A with the same cache dir ($n_ok files were written before the crash)"
  rfs_mount A
  "$ROAMFS" sync "$a" --wait --timeout 120 >/dev/null || fail "sync --wait on A after the crash failed"
  while read -r name; do
    i=${name##*/f}; i=$((10#$i))
    exp=$("$PY" -c "import sys; sys.stdout.write(('$i ' * (1 + $i * 37)))")
    [ "$(cat "$name")" = "$exp" ] || fail "$name lost or damaged after crash at $point"
  done <"$WORK/$point.ok"
  "$ROAMFS" sync "$b" --wait --timeout 120 >/dev/null || fail "sync --wait on B failed"
  agree() { manifest "$a" >"$WORK/A.m" && manifest "$b" >"$WORK/B.m" && cmp -s "$WORK/A.m" "$WORK/B.m"; }
  for ((i = 0; i < 50; i++)); do agree && break; sleep 0.2; done
  diff -u "$WORK/A.m" "$WORK/B.m" >&2 || fail "A and B disagree after the crash at $point"
  rc=0; "$ROAMFS" status "$a" >"$WORK/status.$point" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$WORK/status.$point" >&2; fail "A still has work pending after sync --wait (status $rc)"; }
  rfs_umount A
done

step "a fresh host reads everything from the store alone"
rfs_new_cache A
rfs_mount A
manifest "$a" >"$WORK/A2.m"
diff -u "$WORK/B.m" "$WORK/A2.m" >&2 || fail "a fresh replica differs"
rfs_umount A
rfs_umount B
