# shellcheck shell=bash
# Integration test harness for roamfs: sourced by each tests/integration/test_*.sh.
#
# What it gives a test
#   - `set -euo pipefail`, a private work dir $WORK (under ${TMPDIR:-/tmp}, named after the test),
#     a watchdog that aborts a hung test before ctest's own timeout kills it without cleanup;
#   - workspaces by NAME: each NAME has a store, a mount point and a cache dir under $WORK/NAME:
#       rfs_format NAME [format args]      format the store of NAME
#       rfs_mount NAME [mount args]        mount it, wait until `mountpoint -q` says so
#       rfs_umount NAME                    `roamfs umount`, then check the daemon really exited
#       rfs_kill9 NAME                     SIGKILL the daemon, `fusermount3 -uz` the mount point
#       rfs_crashed NAME WHAT              the daemon killed itself (a crash point, a fault
#                                          shim): wait for it, `fusermount3 -uz` the mount point
#       rfs_new_cache NAME                 next mount of NAME uses a brand-new empty cache dir
#       rfs_store / rfs_store_dir / rfs_mp / rfs_cache / rfs_pid NAME   the paths and the pid
#     RFS_CACHE_DIR[NAME]=DIR and RFS_STORE_URL[NAME]=URL override the defaults (a tmpfs cache,
#     two NAMEs sharing one store for two-host tests);
#   - assertions: fail, assert_eq, assert_same_file, assert_match, expect_fail, step;
#   - an EXIT trap that lazily unmounts everything mounted under $WORK, kills the daemons this
#     test started (by PID, checked against /proc/PID/cmdline), and on failure prints the daemon
#     logs (every *.log in the cache dirs), the mount commands' output, and a repro command.
#
# Environment
#   ROAMFS              the binary (default: $ROAMFS_BUILD/roamfs)
#   ROAMFS_BUILD        the build dir (default: $ROAMFS_SRC/build); test tools live under it
#   ROAMFS_SRC          the source tree (default: two levels above this file)
#   ROAMFS_TEST_STORE   file (default) | s3
#   ROAMFS_TEST_S3_URL  with ROAMFS_TEST_STORE=s3: base URL, e.g. s3://bucket/ci?endpoint=...;
#                       each workspace gets its own prefix under it
#   ROAMFS_TEST_MOUNT_OPTS  extra arguments appended to every `roamfs mount` (test matrix)
#   ROAMFS_TEST_DEADLINE    seconds before the watchdog aborts the test (default 570)
#   ROAMFS_TEST_FOREGROUND=1  run every daemon with -f in the background of the test, its stderr
#                       in $WORK/NAME/mount.N.out (sanitizer builds: UBSan reports go to stderr,
#                       which a daemonized process has closed)
#   ROAMFS_TEST_KEEP=1      keep $WORK even when the test passes (it is always kept on failure)
#
# Exit status: 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE).

set -euo pipefail
shopt -s nullglob

TEST_NAME=$(basename "$0" .sh)
RFS__SCRIPT=$(readlink -f "$0")
ROAMFS_SRC=${ROAMFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
ROAMFS_BUILD=${ROAMFS_BUILD:-$ROAMFS_SRC/build}
ROAMFS=${ROAMFS:-$ROAMFS_BUILD/roamfs}
ROAMFS_TEST_STORE=${ROAMFS_TEST_STORE:-file}
ROAMFS_TEST_MOUNT_OPTS=${ROAMFS_TEST_MOUNT_OPTS:-}
ROAMFS_TEST_DEADLINE=${ROAMFS_TEST_DEADLINE:-570}
ROAMFS_TEST_FOREGROUND=${ROAMFS_TEST_FOREGROUND:-0}
POSIX_SUITE=${POSIX_SUITE:-$ROAMFS_BUILD/tests/posix/posix_suite}
FSX=${FSX:-$ROAMFS_BUILD/tests/fsx/fsx}
MOUNT_TIMEOUT=${MOUNT_TIMEOUT:-60}     # roamfs mount + the mount point going live
UMOUNT_TIMEOUT=${UMOUNT_TIMEOUT:-300}  # roamfs umount flushes everything: allow for big uploads
PY=$(command -v python3 || true)  # for the tests
export PY
export LC_ALL=C

declare -A RFS_CACHE_DIR=() RFS_STORE_URL=() RFS_CACHE_GEN=() RFS_FG_PID=()
RFS__T0=$SECONDS

step() { printf '[%s +%ss] %s\n' "$TEST_NAME" "$((SECONDS - RFS__T0))" "$*" >&2; }
note() { printf '[%s] note: %s\n' "$TEST_NAME" "$*" >&2; }

# fail MSG: print where and what, and end the test (the EXIT trap prints the logs).
fail() {
  local i where="" c
  for ((i = 0; i < 3; i++)); do
    c=$(caller $i) || break   # "LINE FUNC FILE"
    where="${where:+$where <- }$(basename "${c##* }"):${c%% *}"
  done
  printf '\n[%s] FAIL: %s\n    at %s\n' "$TEST_NAME" "$*" "$where" >&2
  exit 1
}

skip() { printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*" >&2; exit 77; }

assert_eq() {  # EXPECTED ACTUAL WHAT
  [ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

assert_match() {  # REGEX(ERE, case-insensitive) FILE WHAT
  grep -Eiq -- "$1" "$2" || { sed 's/^/    | /' "$2" >&2; fail "$3: output does not match /$1/ (shown above)"; }
}

assert_same_file() {  # EXPECTED ACTUAL [WHAT]
  local out
  if ! out=$(cmp -- "$1" "$2" 2>&1); then
    fail "${3:-content} differs: $out ($(stat -c %s -- "$1" 2>/dev/null || echo '?') vs $(stat -c %s -- "$2" 2>/dev/null || echo '?') bytes)"
  fi
}

# expect_fail WHAT REGEX CMD...: CMD must exit non-zero (not by timeout) and say something
# matching REGEX. Output goes to a file, never a pipe: a daemon that forks off by mistake must not
# hang the test by holding the pipe open.
expect_fail() {
  local what=$1 re=$2; shift 2
  local out="$WORK/expect_fail.$RANDOM.out" rc=0
  timeout -k 5 "$MOUNT_TIMEOUT" "$@" >"$out" 2>&1 </dev/null || rc=$?
  sed 's/^/    | /' "$out" >&2
  [ "$rc" -ne 0 ] || fail "$what: '$*' succeeded, expected it to fail"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then fail "$what: '$*' timed out after ${MOUNT_TIMEOUT}s"; fi
  [ "$rc" -lt 128 ] || fail "$what: '$*' died from signal $((rc - 128)) instead of failing cleanly"
  grep -Eiq -- "$re" "$out" || fail "$what: message does not match /$re/"
  step "ok: $what (exit $rc)"
}

# --- workspaces ----------------------------------------------------------------------------------

rfs__check_name() { [[ $1 =~ ^[A-Za-z0-9_.-]+$ ]] || fail "bad workspace name '$1'"; }

rfs_store() {
  rfs__check_name "$1"
  if [ -n "${RFS_STORE_URL[$1]:-}" ]; then echo "${RFS_STORE_URL[$1]}"; return; fi
  case $ROAMFS_TEST_STORE in
    file) echo "file://$WORK/$1/store" ;;
    s3)
      local base=${ROAMFS_TEST_S3_URL%%\?*} query=${ROAMFS_TEST_S3_URL#"${ROAMFS_TEST_S3_URL%%\?*}"}
      echo "${base%/}/$(basename "$WORK")-$1$query" ;;
  esac
}

# rfs_store_dir NAME: the store as a local directory (file store only; tests that poke at the
# store's files call rfs_require_file_store first).
rfs_store_dir() {
  local url; url=$(rfs_store "$1")
  case $url in
    file://*) echo "${url#file://}" ;;
    /*) echo "$url" ;;
    *) fail "store of '$1' is not a local directory: $url" ;;
  esac
}

rfs_require_file_store() {
  [ "$ROAMFS_TEST_STORE" = file ] || skip "needs ROAMFS_TEST_STORE=file (pokes at store files)"
}

rfs_mp() { rfs__check_name "$1"; echo "$WORK/$1/mnt"; }

rfs_cache() {
  rfs__check_name "$1"
  echo "${RFS_CACHE_DIR[$1]:-$WORK/$1/cache.${RFS_CACHE_GEN[$1]:-0}}"
}

# rfs_new_cache NAME: the next rfs_mount of NAME gets a brand-new empty cache dir (the old one is
# kept for the logs).
rfs_new_cache() {
  rfs__check_name "$1"
  mountpoint -q "$(rfs_mp "$1")" && fail "rfs_new_cache $1: still mounted"
  unset "RFS_CACHE_DIR[$1]"
  RFS_CACHE_GEN[$1]=$(( ${RFS_CACHE_GEN[$1]:-0} + 1 ))
}

rfs_pidfile() { echo "$(rfs_cache "$1")/roamfs.pid"; }
rfs_logfile() { echo "$(rfs_cache "$1")/roamfs.log"; }

# rfs_pid NAME: the daemon's pid from its pid file (empty if none).
rfs_pid() {
  if [ -n "${RFS_FG_PID[$1]:-}" ]; then echo "${RFS_FG_PID[$1]}"; return; fi
  local f; f=$(rfs_pidfile "$1")
  [ -s "$f" ] && tr -dc 0-9 <"$f"
  return 0
}

# rfs__is_ours PID: alive and a roamfs process working inside $WORK (guards against pid reuse).
rfs__is_ours() {
  local pid=$1 cmd
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *roamfs* && $cmd == *"$WORK/"* ]]
}

rfs__alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

rfs__wait_gone() {  # PID SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do rfs__alive "$1" || return 0; sleep 0.1; done
  return 1
}

rfs_format() {
  local name=$1; shift
  local store out rc=0
  store=$(rfs_store "$name")
  mkdir -p "$WORK/$name"
  [[ $store == file://* ]] && mkdir -p "${store#file://}"
  out="$WORK/$name/format.out"
  step "roamfs format $store $*"
  timeout -k 5 "$MOUNT_TIMEOUT" "$ROAMFS" format "$store" "$@" >"$out" 2>&1 </dev/null || rc=$?
  [ "$rc" -eq 0 ] || { sed 's/^/    | /' "$out" >&2; fail "roamfs format $store exited $rc"; }
}

# rfs_mount NAME [args...]: mount NAME's store on its mount point with its cache dir.
# With -f among the args the daemon runs in the background of this shell.
rfs_mount() {
  local name=$1; shift
  local store mp cache out rc=0 fg=0 a i pid
  store=$(rfs_store "$name"); mp=$(rfs_mp "$name"); cache=$(rfs_cache "$name")
  mkdir -p "$mp" "$cache"
  mountpoint -q "$mp" && fail "rfs_mount $name: $mp is already a mount point"
  # shellcheck disable=SC2206  # word splitting of the matrix options is intended
  local args=(mount "$store" "$mp" --cache-dir "$cache" "$@" $ROAMFS_TEST_MOUNT_OPTS)
  for a in "$@"; do [ "$a" = -f ] && fg=1; done
  if [ "$ROAMFS_TEST_FOREGROUND" = 1 ] && [ $fg = 0 ]; then fg=1; args+=(-f); fi
  i=1; while [ -e "$WORK/$name/mount.$i.out" ]; do i=$((i + 1)); done
  out="$WORK/$name/mount.$i.out"
  step "roamfs ${args[*]}"
  if [ $fg = 1 ]; then
    "$ROAMFS" "${args[@]}" >"$out" 2>&1 </dev/null &
    RFS_FG_PID[$name]=$!
    echo "${RFS_FG_PID[$name]}" >>"$WORK/.pids"
  else
    unset "RFS_FG_PID[$name]"
    timeout -k 5 "$MOUNT_TIMEOUT" "$ROAMFS" "${args[@]}" >"$out" 2>&1 </dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
      sed 's/^/    | /' "$out" >&2
      fail "roamfs mount of '$name' exited $rc"
    fi
  fi
  for ((i = 0; i < MOUNT_TIMEOUT * 10; i++)); do
    mountpoint -q "$mp" && break
    if [ $fg = 1 ] && ! rfs__alive "${RFS_FG_PID[$name]}"; then
      sed 's/^/    | /' "$out" >&2; fail "roamfs mount -f of '$name' exited before the mount went live"
    fi
    sleep 0.1
  done
  mountpoint -q "$mp" || fail "$mp is not a mount point ${MOUNT_TIMEOUT}s after roamfs mount returned 0"
  grep -q " $(printf '%s' "$mp" | sed 's/ /\\040/g') .* - fuse" /proc/self/mountinfo \
    || fail "$mp is mounted but not as a FUSE file system"
  if [ $fg = 0 ]; then
    for ((i = 0; i < 50; i++)); do [ -n "$(rfs_pid "$name")" ] && break; sleep 0.1; done
    pid=$(rfs_pid "$name")
    [ -n "$pid" ] || fail "no pid in $(rfs_pidfile "$name") after the mount went live"
    rfs__alive "$pid" || fail "pid $pid from $(rfs_pidfile "$name") is not running"
    echo "$pid" >>"$WORK/.pids"
  fi
}

# rfs_remount_empty NAME [args...]: unmount NAME (which uploads everything) and mount it again
# with a brand-new empty cache dir, as a new host would.
rfs_remount_empty() {
  rfs_umount "$1"
  rfs_new_cache "$1"
  rfs_mount "$@"
}

# rfs_status_field MOUNTPOINT FIELD: one field of `roamfs status --json` (which exits 1 or 2
# while uploads are pending or failing; its JSON is what counts).
rfs_status_field() {
  { "$ROAMFS" status "$1" --json || true; } | "$PY" -c "import json,sys; print(json.load(sys.stdin)['mounts'][0]['$2'])"
}

# rfs_umount NAME: roamfs umount must flush, unmount and wait for its daemon to exit.
rfs_umount() {
  local name=$1 mp pid rc=0 out i
  mp=$(rfs_mp "$name"); pid=$(rfs_pid "$name")
  i=1; while [ -e "$WORK/$name/umount.$i.out" ]; do i=$((i + 1)); done
  out="$WORK/$name/umount.$i.out"
  step "roamfs umount $mp"
  timeout -k 5 "$UMOUNT_TIMEOUT" "$ROAMFS" umount "$mp" >"$out" 2>&1 </dev/null || rc=$?
  [ -s "$out" ] && sed 's/^/    | /' "$out" >&2
  [ "$rc" -eq 0 ] || fail "roamfs umount $mp exited $rc"
  mountpoint -q "$mp" && fail "$mp is still a mount point after roamfs umount returned 0"
  if [ -n "$pid" ] && rfs__alive "$pid"; then
    # the contract: umount returns after the daemon exited; allow a moment for the reaper
    rfs__wait_gone "$pid" 2 || fail "daemon $pid still running after roamfs umount returned"
  fi
  if [ -n "${RFS_FG_PID[$name]:-}" ]; then
    wait "${RFS_FG_PID[$name]}" || fail "foreground daemon of '$name' exited with status $?"
    unset "RFS_FG_PID[$name]"
  fi
  return 0
}

# rfs_kill9 NAME: crash the daemon, then detach the dead mount.
rfs_kill9() {
  local name=$1 mp pid
  mp=$(rfs_mp "$name"); pid=$(rfs_pid "$name")
  [ -n "$pid" ] || fail "rfs_kill9 $name: no pid file"
  rfs__is_ours "$pid" || fail "rfs_kill9 $name: pid $pid is not a roamfs daemon of this test"
  step "kill -9 $pid (daemon of '$name'), fusermount3 -uz $mp"
  kill -9 "$pid"
  rfs__wait_gone "$pid" 10 || fail "daemon $pid survived SIGKILL for 10s"
  rfs__detach_dead "$name"
}

# rfs_crashed NAME WHAT: the daemon of NAME must have died by itself (fails saying WHAT did
# not happen otherwise); reap it, detach the dead mount.
rfs_crashed() {
  local name=$1 pid
  pid=$(rfs_pid "$name")
  [ -n "$pid" ] || fail "rfs_crashed $name: no pid file"
  rfs__wait_gone "$pid" 10 || fail "$2: daemon $pid still running"
  rfs__detach_dead "$name"
}

rfs__detach_dead() {
  local name=$1 mp
  mp=$(rfs_mp "$name")
  if [ -n "${RFS_FG_PID[$name]:-}" ]; then wait "${RFS_FG_PID[$name]}" 2>/dev/null || true; unset "RFS_FG_PID[$name]"; fi
  fusermount3 -uz "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  mountpoint -q "$mp" && fail "$mp still mounted after fusermount3 -uz"
  return 0
}

# rfs_faults_shim: builds faults_shim.c into $RFS_SHIM (mount with LD_PRELOAD=$RFS_SHIM) and
# points it at the trigger dir $RFS_FAULTS (exported as ROAMFS_FAULTS_DIR); an ASan build is
# told the shim may come first (it only wraps libc calls). Skips without a C compiler. Call it
# in the test's own shell, not in $(...).
rfs_faults_shim() {
  command -v cc >/dev/null || skip "no C compiler for the fault shim"
  RFS_SHIM=$WORK/faults_shim.so RFS_FAULTS=$WORK/faults
  cc -shared -fPIC -O1 -o "$RFS_SHIM" "$ROAMFS_SRC/tests/integration/faults_shim.c" -ldl ||
    fail "cannot build faults_shim.c"
  mkdir -p "$RFS_FAULTS"
  export ROAMFS_FAULTS_DIR=$RFS_FAULTS
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
}

# rfs_mount_tmpfs DIR SIZE: a small tmpfs (e.g. a cache dir that fills up); cleaned up on exit.
rfs_mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || skip "cannot mount a tmpfs (needs root)"
}

# --- cleanup and the watchdog --------------------------------------------------------------------

# Mount points under $WORK, deepest first: `rfs__mounts_under_work fuse` lists the FUSE ones,
# `rfs__mounts_under_work other` the rest (tmpfs), no argument all. Reads only /proc: never
# touches a mount point, which may belong to a hung daemon.
rfs__mounts_under_work() {
  awk -v w="$WORK/" -v want="${1:-all}" '{
      p = $5; gsub(/\\040/, " ", p)
      for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break }
      isfuse = (t ~ /^fuse/)
      if (index(p, w) == 1 && (want == "all" || (want == "fuse") == isfuse)) print length(p) "\t" p
    }' /proc/self/mountinfo | sort -rn | cut -f2-
}

# Every daemon this test started: pids recorded at mount time plus pid files under $WORK
# (a mount that succeeded where a test expected it to fail).
rfs__our_pids() {
  { [ -f "$WORK/.pids" ] && cat "$WORK/.pids"
    find "$WORK" -xdev -name roamfs.pid -exec cat {} + 2>/dev/null
    local m
    while IFS= read -r m; do [ -s "$m/roamfs.pid" ] && cat "$m/roamfs.pid"; done < <(rfs__mounts_under_work other)
  } 2>/dev/null | tr -dc '0-9\n' | sort -un
}

# Kill the daemons this test started (TERM, then KILL), then detach their mounts.
rfs__abort_daemons() {
  local m pid
  for pid in $(rfs__our_pids); do
    rfs__is_ours "$pid" || continue
    echo "[$TEST_NAME] cleanup: killing leftover daemon $pid" >&2
    kill -TERM "$pid" 2>/dev/null || true
    rfs__wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
  done
  while IFS= read -r m; do
    echo "[$TEST_NAME] cleanup: detaching $m" >&2
    fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(rfs__mounts_under_work fuse)
}

rfs__unmount_rest() {
  local m
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(rfs__mounts_under_work other)
}

rfs__print_logs() {
  local f
  echo "===== [$TEST_NAME] failed after $((SECONDS - RFS__T0))s; work dir kept: $WORK" >&2
  for f in "$WORK"/*/*.out "$WORK"/*/*.log "$WORK"/*/cache*/*.log; do
    [ -s "$f" ] || continue
    echo "----- $f (last 200 lines)" >&2
    tail -n 200 "$f" >&2
  done
  echo "===== repro:" >&2
  # shellcheck disable=SC2016  # the single quotes are literal: they quote the value in the hint
  echo "  ROAMFS=$ROAMFS ROAMFS_BUILD=$ROAMFS_BUILD ROAMFS_TEST_STORE=$ROAMFS_TEST_STORE${ROAMFS_TEST_MOUNT_OPTS:+ ROAMFS_TEST_MOUNT_OPTS='$ROAMFS_TEST_MOUNT_OPTS'} ROAMFS_TEST_FOREGROUND=$ROAMFS_TEST_FOREGROUND ROAMFS_TEST_KEEP=1 bash $RFS__SCRIPT" >&2
}

rfs__on_exit() {
  local rc=$?
  trap - EXIT
  set +e
  [ -n "${RFS__WATCHDOG:-}" ] && kill "$RFS__WATCHDOG" 2>/dev/null && wait "$RFS__WATCHDOG" 2>/dev/null
  cd / || true
  rfs__abort_daemons
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    rfs__print_logs
  fi
  rfs__unmount_rest
  if [ -n "$(rfs__mounts_under_work)" ]; then
    echo "[$TEST_NAME] WARNING: still mounted under $WORK; not removing it" >&2
  elif [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
    if [ "${ROAMFS_TEST_KEEP:-0}" = 1 ]; then echo "[$TEST_NAME] kept $WORK" >&2
    else rm -rf --one-file-system "$WORK"; fi
  fi
  [ "$rc" -eq 0 ] && echo "[$TEST_NAME] PASS ($((SECONDS - RFS__T0))s)" >&2
  exit "$rc"
}

# --- setup ---------------------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || { echo "[$TEST_NAME] SKIP: integration tests run as root (FUSE, tmpfs)" >&2; exit 77; }
[ -x "$ROAMFS" ] || { echo "[$TEST_NAME] FAIL: no roamfs binary at $ROAMFS (set ROAMFS or ROAMFS_BUILD)" >&2; exit 1; }
[ -c /dev/fuse ] || { echo "[$TEST_NAME] SKIP: no /dev/fuse" >&2; exit 77; }
command -v fusermount3 >/dev/null || { echo "[$TEST_NAME] FAIL: fusermount3 missing (apt-get install fuse3)" >&2; exit 1; }
case $ROAMFS_TEST_STORE in
  file) ;;
  s3) [ -n "${ROAMFS_TEST_S3_URL:-}" ] || { echo "[$TEST_NAME] SKIP: ROAMFS_TEST_STORE=s3 needs ROAMFS_TEST_S3_URL" >&2; exit 77; } ;;
  *) echo "[$TEST_NAME] FAIL: unknown ROAMFS_TEST_STORE=$ROAMFS_TEST_STORE (file|s3)" >&2; exit 1 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/roamfs-$TEST_NAME.XXXXXX")
WORK=$(cd "$WORK" && pwd -P)
export WORK
: >"$WORK/.pids"
trap rfs__on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# The watchdog: past the deadline, kill our daemons and detach our mounts (so a test blocked in a
# FUSE call gets ENOTCONN and moves on), then end the test; the EXIT trap prints the logs.
(
  trap - EXIT INT
  me=$BASHPID
  sleep "$ROAMFS_TEST_DEADLINE" >/dev/null 2>&1 &
  sleeper=$!
  trap 'kill $sleeper 2>/dev/null; exit 0' TERM
  wait $sleeper || exit 0
  echo "[$TEST_NAME] TIMEOUT: test still running after ${ROAMFS_TEST_DEADLINE}s, aborting" >&2
  kill -TERM $$ 2>/dev/null
  sleep 2
  rfs__abort_daemons
  # then the test's own children (a cmp or dd stuck on the mount), by pid
  # shellcheck disable=SC2013
  for p in $(sed -n 's/^\([0-9]*\) (.*) [A-Z] \([0-9]*\) .*/\1 \2/p' /proc/[0-9]*/stat 2>/dev/null | awk -v pp=$$ -v me="$me" '$2 == pp && $1 != me { print $1 }'); do
    kill -TERM "$p" 2>/dev/null
  done
) &
RFS__WATCHDOG=$!

step "work dir $WORK, binary $ROAMFS, store type $ROAMFS_TEST_STORE"
