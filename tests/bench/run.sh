#!/usr/bin/env bash
# tests/bench/run.sh - the issue-6 benchmark: workloads W1-W10 against a plain local directory,
# roamfs on file://, roamfs on s3:// (a local Ceph RGW), s3fs-fuse and rclone mount
# (--vfs-cache-mode full) on the same RGW, in one run; prints times, ratios, throughput, the
# server ceiling, store requests per workload and peak daemon memory. See docs/benchmarks.md.
#
# Usage (as root, from anywhere):   tests/bench/run.sh
#
# Environment (all optional):
#   BENCH_TARGETS=local,roamfs-file,roamfs-s3,s3fs,rclone   which targets, in this order
#   BENCH_QUICK=1          smoke run: small tree, 128 MiB big file, fewer reads (~3-4 min)
#   BENCH_BIG_MB=1024      size of the W5-W8 file (default 1024; 128 with BENCH_QUICK=1)
#   BENCH_W1_SET=full      W1 tree: full = the interpreter's stdlib without site-packages and the
#                          static libpython (~7.7k files); notest = also without test dirs
#                          (~3k files); small = notest without tkinter/idlelib/lib2to3/distutils/
#                          ensurepip (quick default)
#   BENCH_RAND_READS=2000  W8 preads per pass (500 quick);  BENCH_W9_FILES=1000 (200 quick)
#   BENCH_IDLE_S=10        idle-mount request measurement (3 quick)
#   BENCH_REPEAT=3         warm steps (W3, W4, W7, W8w) run this often; the best time counts
#   BENCH_COLD_REPEAT=2    cold reads (W6, W6m, W8c) run this often, each on a fresh mount
#   BENCH_BUDGET_S=1140    wall-clock budget: steps not started by then are reported "skip"
#   BENCH_STEP_TIMEOUT=300 per step (a step past it is reported "timeout")
#   BENCH_S3_PORT=4860     RGW port (the monitor/OSD use PORT+1..PORT+20, rclone's rc PORT+30)
#   BENCH_DIR=/tmp/...     work dir (default: a new mktemp dir; removed at the end)
#   BENCH_KEEP=1           keep the work dir (daemon logs, RGW log, caches)
#   BENCH_OUT=/tmp/roamfs-bench-last   where report.txt, results.tsv and run.log are copied
#   ROAMFS=build/roamfs    the roamfs binary (copied into the work dir at start, so a rebuild
#                          during the run does not change what is measured)
#   BENCH_CEPH_SH=tests/s3/ceph.sh   the RGW harness
#
# Every target that cannot be set up (package missing, format/mount failure) is reported as
# "n/a (reason)"; the run goes on. Everything started (daemons, mounts, the RGW) is stopped
# by PID / by mount point on exit, also on Ctrl-C.
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_ROOT=$(cd "$HERE/../.." && pwd)
HELPER=$HERE/bench.py

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then dq() { echo "$1"; }; else dq() { echo "$2"; }; fi
TARGETS=${BENCH_TARGETS:-local,roamfs-file,roamfs-s3,s3fs,rclone}
BIG_MB=${BENCH_BIG_MB:-$(dq 128 1024)}
W1_SET=${BENCH_W1_SET:-$(dq small full)}
RAND_N=${BENCH_RAND_READS:-$(dq 500 2000)}
W9_FILES=${BENCH_W9_FILES:-$(dq 200 1000)}
IDLE_S=${BENCH_IDLE_S:-$(dq 3 10)}
REPEAT=${BENCH_REPEAT:-3}
COLD_REPEAT=${BENCH_COLD_REPEAT:-2}
BUDGET=${BENCH_BUDGET_S:-1140}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-300}
S3_PORT=${BENCH_S3_PORT:-4860}
RC_PORT=$((S3_PORT + 30))
OUT=${BENCH_OUT:-/tmp/roamfs-bench-last}
CEPH_SH=${BENCH_CEPH_SH:-$SRC_ROOT/tests/s3/ceph.sh}
ROAMFS_SRC_BIN=${ROAMFS:-$SRC_ROOT/build/roamfs}

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (FUSE mounts, drop_caches, apt-get)" >&2; exit 1; }
[[ $BIG_MB =~ ^[0-9]+$ ]] && ((BIG_MB >= 8)) || { echo "run.sh: BENCH_BIG_MB must be >= 8" >&2; exit 2; }

W=${BENCH_DIR:-$(mktemp -d /tmp/roamfs-bench.XXXXXX)}
mkdir -p "$W" "$OUT" || exit 1
W=$(cd "$W" && pwd)
RESULTS=$W/results.tsv
RUNLOG=$W/run.log
: >"$RESULTS"
: >"$RUNLOG"
T_START=$SECONDS

# ------------------------------------------------------------------------------------------
# bookkeeping, cleanup

declare -a MOUNTS=() PIDS=()
STEP_PID=""
CEPH_STARTED=0

log() { printf '[bench +%4ds] %s\n' "$((SECONDS - T_START))" "$*" | tee -a "$RUNLOG" >&2; }
rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }   # TARGET KEY VALUE

pid_alive() { [ -n "${1:-}" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

cleanup() {
  local rc=$? mp pid i
  trap '' INT TERM
  [ -n "$STEP_PID" ] && pid_alive "$STEP_PID" && kill -TERM "$STEP_PID" 2>/dev/null
  for mp in ${MOUNTS[@]+"${MOUNTS[@]}"}; do
    if mountpoint -q "$mp" 2>/dev/null; then
      log "cleanup: unmounting $mp"
      fusermount3 -uz "$mp" 2>/dev/null || fusermount -uz "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null
    fi
  done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for ((i = 0; i < 50; i++)); do
    local left=0
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do pid_alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.2
  done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    pid_alive "$pid" && { log "cleanup: SIGKILL $pid"; kill -KILL "$pid" 2>/dev/null; }
  done
  if ((CEPH_STARTED)); then
    "$CEPH_SH" stop "$W/ceph" >>"$RUNLOG" 2>&1 || true
  fi
  cp -f "$RESULTS" "$RUNLOG" "$OUT/" 2>/dev/null
  [ -f "$W/report.txt" ] && cp -f "$W/report.txt" "$OUT/"
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ -n "${BENCH_DIR:-}" ]; then
    log "work dir kept: $W"
  else
    rm -rf "$W"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# bg_run TIMEOUT CMD...: run CMD (a command or an exported function) under timeout in the
# background and wait for it, so that Ctrl-C reaches our trap at once. Output goes to run.log.
bg_run() {
  local t=$1; shift
  timeout -k 10 "$t" bash -c '"$@"' _ "$@" >>"$RUNLOG" 2>&1 &
  STEP_PID=$!
  wait "$STEP_PID"
  local rc=$?
  STEP_PID=""
  return $rc
}

now_us() { echo "${EPOCHREALTIME/./}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e6}'; }
over_budget() { (( SECONDS - T_START > BUDGET )); }

drop_caches() {
  sync
  if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    [ -n "${DROP_WARNED:-}" ] || { log "WARNING: cannot drop the page cache: cold runs are not cold"; rec _ notes "page cache NOT dropped"; DROP_WARNED=1; }
  fi
}

# ------------------------------------------------------------------------------------------
# preparation: binaries, W1 tree, big file

RFS=$W/bin/roamfs
mkdir -p "$W/bin"
ROAMFS_NOTE="n/a"
if [ -x "$ROAMFS_SRC_BIN" ]; then
  cp "$ROAMFS_SRC_BIN" "$RFS"
  ROAMFS_NOTE="$(cd "$SRC_ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$SRC_ROOT" && git diff --quiet HEAD -- . 2>/dev/null || echo '+dirty tree') binary $(stat -c %y "$ROAMFS_SRC_BIN" | cut -d. -f1) sha256 $(sha256sum "$RFS" | cut -c1-12)"
fi

PYBIN=$(python3 -c 'import sys, os; print(os.path.realpath(sys.executable))')
PYSTD=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
PYVER=$(basename "$PYSTD")
SRCTREE=$W/src/pyhome
mkdir -p "$SRCTREE/lib"
excl=(--exclude="$PYVER/site-packages" --exclude="$PYVER/config-*")
case $W1_SET in
  full) ;;
  notest|small)
    excl+=(--exclude="$PYVER/test" --exclude='*/tests' --exclude='*/idle_test' --exclude="$PYVER/unittest/test"
           --exclude="$PYVER/ctypes/test" --exclude="$PYVER/tkinter/test")
    [ "$W1_SET" = small ] && excl+=(--exclude="$PYVER/tkinter" --exclude="$PYVER/idlelib" --exclude="$PYVER/lib2to3"
           --exclude="$PYVER/distutils" --exclude="$PYVER/ensurepip" --exclude="$PYVER/turtledemo" --exclude="$PYVER/pydoc_data")
    ;;
  *) echo "run.sh: BENCH_W1_SET must be full, notest or small" >&2; exit 2 ;;
esac
log "preparing the W1 tree ($W1_SET) from $PYSTD"
(cd "$(dirname "$PYSTD")" && tar -c "${excl[@]}" "$PYVER") | tar -x -C "$SRCTREE/lib" || { echo "run.sh: cannot copy $PYSTD" >&2; exit 1; }
W1_FILES=$(find "$SRCTREE" -type f | wc -l)
W1_DIRS=$(find "$SRCTREE" -type d | wc -l)
W1_MB=$(du -sm "$SRCTREE" | cut -f1)

IMPORTS="json, email.mime.multipart, http.client, http.server, asyncio, decimal, xml.etree.ElementTree, xml.dom.minidom, sqlite3, unittest, unittest.mock, logging.handlers, multiprocessing, concurrent.futures, argparse, csv, ssl, urllib.request, pathlib, tarfile, zipfile, typing, dataclasses, pydoc, difflib, statistics, fractions, inspect, ctypes, pickle, datetime, uuid, hashlib, importlib.metadata, tomllib, lzma, bz2, shutil, tempfile, subprocess, socket, selectors, random, secrets, hmac, base64, struct, queue, threading, calendar, zoneinfo, configparser, plistlib, mailbox, smtplib, imaplib, ftplib, xmlrpc.client, wsgiref.simple_server, html.parser, doctest, trace, cProfile, pstats, timeit, dis, ast, tokenize, pdb, code, textwrap, pprint, gettext, locale, wave, sched, glob, fnmatch, numbers, enum, heapq, bisect, string, copy, traceback, warnings"
IMPORT_CODE="import os, sys
import $IMPORTS
home = os.environ['PYTHONHOME']
assert json.__file__.startswith(home), json.__file__
print(len(sys.modules))"
w2_import() {
  cd "$W" && env -i PATH=/usr/bin:/bin PYTHONHOME="$MP/pyhome" PYTHONDONTWRITEBYTECODE=1 \
    "$PYBIN" -s -S -c "$IMPORT_CODE" >"$W/w2.out"
}
# the module count the import gives from the local copy (each run must match it)
MP=$W/src
W2_EXPECT=$( (w2_import && cat "$W/w2.out") 2>>"$RUNLOG") || { echo "run.sh: the import list fails on the local tree; see $RUNLOG" >&2; exit 1; }

log "making the ${BIG_MB} MiB incompressible file"
head -c "$((BIG_MB * 1048576))" /dev/urandom >"$W/big.src" || exit 1

rec _ date "$(date -u '+%Y-%m-%d %H:%M UTC')"
rec _ machine "$(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(findmnt -no FSTYPE,SOURCE --target "$W" | tr -s ' ' ' ') under $W"
rec _ roamfs "$ROAMFS_NOTE"
rec _ w1 "$W1_SET: $W1_FILES files, $W1_DIRS dirs, $W1_MB MiB ($PYSTD); W2 imports ${W2_EXPECT} modules"
rec _ w1_files "$W1_FILES"
rec _ big "$BIG_MB MiB from /dev/urandom; W8: $RAND_N preads; W9: $W9_FILES files"
rec _ big_mb "$BIG_MB"
rec _ idle_s "$IDLE_S"
rec _ quick "$QUICK"

# ------------------------------------------------------------------------------------------
# the S3 server

S3_OK=0
S3_REASON=""
RGW_LOG=$W/ceph/log/client.rgw.a.log
need_s3=0
for t in ${TARGETS//,/ }; do case $t in roamfs-s3|s3fs|rclone) need_s3=1 ;; esac; done

s3curl() {  # METHOD PATH [curl args...]: one signed request, prints the HTTP code
  local m=$1 p=$2; shift 2
  curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -X "$m" "$@" "$S3_ENDPOINT$p"
}
make_bucket() { [ "$(s3curl PUT "/$1")" = 200 ]; }
rgw_off() { if [ -f "$RGW_LOG" ]; then stat -c %s "$RGW_LOG"; else echo 0; fi; }
export -f rgw_off

if ((need_s3)); then
  if [ ! -x "$CEPH_SH" ] && [ ! -f "$CEPH_SH" ]; then
    S3_REASON="RGW harness $CEPH_SH missing"
  else
    # memstore: objects live in RAM; room for the ceiling object and three big files + GC lag
    export CEPH_S3_MEM_BYTES=${CEPH_S3_MEM_BYTES:-$(((5 * BIG_MB + 2048) * 1048576))}
    log "starting the Ceph RGW on 127.0.0.1:$S3_PORT ($CEPH_SH)"
    CEPH_STARTED=1
    if bg_run 400 bash "$CEPH_SH" start "$W/ceph" "$S3_PORT" && [ -f "$W/ceph/env" ]; then
      # shellcheck disable=SC1091
      . "$W/ceph/env"
      export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
      S3_OK=1
    else
      S3_REASON="RGW did not start (see run.log)"
    fi
  fi
  [ "$S3_OK" = 1 ] || log "S3 targets n/a: $S3_REASON"
fi

if ((S3_OK)); then
  log "server ceiling: one ${BIG_MB} MiB PUT and GET with curl"
  if make_bucket bench-ceiling; then
    cat "$W/big.src" >/dev/null
    put=$(curl -sS -o /dev/null -w '%{http_code} %{speed_upload}' --aws-sigv4 "aws:amz:us-east-1:s3" \
      --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      -T "$W/big.src" "$S3_ENDPOINT/bench-ceiling/big" 2>>"$RUNLOG")
    get=$(curl -sS -o /dev/null -w '%{http_code} %{speed_download}' --aws-sigv4 "aws:amz:us-east-1:s3" \
      --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      "$S3_ENDPOINT/bench-ceiling/big" 2>>"$RUNLOG")
    rec server mb "$BIG_MB"
    [ "${put%% *}" = 200 ] && rec server put_mibs "$(awk -v s="${put#* }" 'BEGIN{printf "%.1f", s/1048576}')" || rec server put_mibs "err ${put%% *}"
    [ "${get%% *}" = 200 ] && rec server get_mibs "$(awk -v s="${get#* }" 'BEGIN{printf "%.1f", s/1048576}')" || rec server get_mibs "err ${get%% *}"
    log "server ceiling: PUT ${put#* } B/s, GET ${get#* } B/s"
    s3curl DELETE /bench-ceiling/big >/dev/null
  else
    log "cannot create a bucket on the RGW"
  fi
fi

# ------------------------------------------------------------------------------------------
# targets: t_setup, t_mount, t_umount, sync_t (exported: steps run in `bash -c` under timeout)

CUR="" MP="" CACHE="" DPID="" GEN=0 STORE_URL="" BUCKET=""
export DEBIAN_FRONTEND=noninteractive
export W RFS CUR MP IDLE_S RGW_LOG BUCKET BIG_MB RAND_N W9_FILES SRCTREE PYBIN IMPORT_CODE RC_PORT HELPER STEP_TIMEOUT

need_pkg() {  # BINARY PACKAGE: install with apt if missing
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  DEBIAN_FRONTEND=noninteractive bg_run 300 apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends "$2" ||
    { DEBIAN_FRONTEND=noninteractive bg_run 200 apt-get -o DPkg::Lock::Timeout=120 update &&
      DEBIAN_FRONTEND=noninteractive bg_run 300 apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends "$2"; }
  command -v "$1" >/dev/null 2>&1
}

NA=""
t_setup() {
  local t=$CUR
  MP=$W/$t/mp
  [ "$t" = local ] && MP=$W/local/dir
  mkdir -p "$MP"
  case $t in
    local) ;;
    roamfs-file)
      [ -x "$RFS" ] || { NA="no roamfs binary at $ROAMFS_SRC_BIN"; return 1; }
      mkdir -p "$W/$t/store"
      STORE_URL="file://$W/$t/store"
      bg_run 60 "$RFS" format "$STORE_URL" || { NA="roamfs format failed: $(tail -n 1 "$RUNLOG")"; return 1; }
      ;;
    roamfs-s3)
      [ -x "$RFS" ] || { NA="no roamfs binary at $ROAMFS_SRC_BIN"; return 1; }
      ((S3_OK)) || { NA=$S3_REASON; return 1; }
      BUCKET=bench-roamfs
      make_bucket "$BUCKET" || { NA="cannot create bucket $BUCKET"; return 1; }
      STORE_URL="s3://$BUCKET/ws?endpoint=$S3_ENDPOINT&region=us-east-1"
      bg_run 60 "$RFS" format "$STORE_URL" || { NA="roamfs format on s3:// failed: $(tail -n 1 "$RUNLOG")"; return 1; }
      ;;
    s3fs)
      ((S3_OK)) || { NA=$S3_REASON; return 1; }
      need_pkg s3fs s3fs || { NA="package s3fs could not be installed"; return 1; }
      BUCKET=bench-s3fs
      make_bucket "$BUCKET" || { NA="cannot create bucket $BUCKET"; return 1; }
      printf '%s:%s\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$W/$t/passwd"
      chmod 600 "$W/$t/passwd"
      ;;
    rclone)
      ((S3_OK)) || { NA=$S3_REASON; return 1; }
      need_pkg rclone rclone || { NA="package rclone could not be installed"; return 1; }
      BUCKET=bench-rclone
      make_bucket "$BUCKET" || { NA="cannot create bucket $BUCKET"; return 1; }
      cat >"$W/$t/rclone.conf" <<EOF
[rgw]
type = s3
provider = Ceph
env_auth = false
access_key_id = $AWS_ACCESS_KEY_ID
secret_access_key = $AWS_SECRET_ACCESS_KEY
endpoint = $S3_ENDPOINT
region = us-east-1
force_path_style = true
EOF
      ;;
  esac
  return 0
}

wait_mounted() {  # PID SECONDS: the mount point is live and the daemon alive
  local pid=$1 n=$(($2 * 10)) i
  for ((i = 0; i < n; i++)); do
    mountpoint -q "$MP" && return 0
    [ -n "$pid" ] && ! pid_alive "$pid" && return 1
    sleep 0.1
  done
  return 1
}

# t_mount: a fresh mount with a new, empty cache dir
t_mount() {
  local t=$CUR i
  GEN=$((GEN + 1))
  CACHE=$W/$t/cache.$GEN
  case $t in
    local) return 0 ;;
    roamfs-*)
      mkdir -p "$CACHE"
      bg_run 120 "$RFS" mount "$STORE_URL" "$MP" --cache-dir "$CACHE" || { NA="roamfs mount failed: $(tail -n 2 "$RUNLOG" | tr '\n' ' ')"; return 1; }
      MOUNTS+=("$MP")
      DPID=$(cat "$CACHE/roamfs.pid" 2>/dev/null)
      [ -n "$DPID" ] && PIDS+=("$DPID")
      for ((i = 0; i < 300; i++)); do   # the control socket answers
        [[ $("$RFS" status "$MP" --json 2>/dev/null) == *'"pid": '[1-9]* ]] && break
        sleep 0.1
      done
      ((i < 300)) || { NA="roamfs status does not answer after mount"; return 1; }
      ;;
    s3fs)
      mkdir -p "$CACHE"
      s3fs "$BUCKET" "$MP" -f -o url="$S3_ENDPOINT" -o use_path_request_style -o endpoint=us-east-1 \
        -o passwd_file="$W/$t/passwd" -o use_cache="$CACHE" >>"$W/$t/s3fs.log" 2>&1 &
      DPID=$!
      PIDS+=("$DPID"); MOUNTS+=("$MP")
      wait_mounted "$DPID" 20 || { NA="s3fs mount failed: $(tail -n 2 "$W/$t/s3fs.log" | tr '\n' ' ')"; return 1; }
      ;;
    rclone)
      mkdir -p "$CACHE"
      env -u AWS_CA_BUNDLE rclone --config "$W/$t/rclone.conf" mount "rgw:$BUCKET" "$MP" \
        --vfs-cache-mode full --cache-dir "$CACHE" --vfs-write-back 1s \
        --rc --rc-addr "127.0.0.1:$RC_PORT" --rc-no-auth --log-file "$W/$t/rclone.log" >/dev/null 2>&1 &
      DPID=$!
      PIDS+=("$DPID"); MOUNTS+=("$MP")
      wait_mounted "$DPID" 20 || { NA="rclone mount failed: $(tail -n 2 "$W/$t/rclone.log" | tr '\n' ' ')"; return 1; }
      ;;
  esac
  return 0
}

# dcpu: the daemon's user+system CPU time in clock ticks (empty without a daemon)
CLK_TCK=$(getconf CLK_TCK)
dcpu() { [ -n "$DPID" ] && awk '{print $14 + $15}' "/proc/$DPID/stat" 2>/dev/null; }

RSS_MAX=0
rss_sample() {
  [ -n "$DPID" ] && pid_alive "$DPID" || return 0
  local kb
  kb=$(awk '/^VmHWM:/{print $2}' "/proc/$DPID/status" 2>/dev/null)
  [ -n "$kb" ] && ((kb > RSS_MAX)) && RSS_MAX=$kb
  return 0
}

t_umount() {
  local t=$CUR i
  [ "$t" = local ] && return 0
  rss_sample
  case $t in
    roamfs-*)
      bg_run 300 "$RFS" umount "$MP" || log "$t: roamfs umount failed (see run.log)"
      ;;
    *)
      for ((i = 0; i < 20; i++)); do
        fusermount3 -u "$MP" 2>>"$RUNLOG" || fusermount -u "$MP" 2>>"$RUNLOG" || true
        mountpoint -q "$MP" || break
        sleep 0.5
      done
      ;;
  esac
  for ((i = 0; i < 300; i++)); do pid_alive "$DPID" || break; sleep 0.1; done
  if pid_alive "$DPID"; then log "$t: daemon $DPID still alive after unmount, SIGTERM"; kill -TERM "$DPID"; sleep 1; fi
  mountpoint -q "$MP" && { log "$t: $MP still mounted, lazy unmount"; fusermount3 -uz "$MP" 2>/dev/null || umount -l "$MP"; }
  DPID=""
  rm -rf "$CACHE"
  return 0
}

# sync_t: the target's "everything is in the store" (runs inside a step)
sync_t() {
  case $CUR in
    roamfs-*) "$RFS" sync "$MP" --wait --timeout "$STEP_TIMEOUT" 2>/dev/null ;;
    rclone)
      sync
      # rclone uploads closed files after --vfs-write-back (1 s here) in the background; `sync`
      # does not wait for that: poll its remote control until no upload is queued or running
      local s n
      while :; do
        s=$(curl -s -m 5 -X POST "http://127.0.0.1:$RC_PORT/vfs/stats") || return 1
        n=$(printf '%s' "$s" | grep -oE '"uploads(InProgress|Queued)": *[0-9]+' | grep -oE '[0-9]+$' | awk '{s+=$1}END{print s+0}')
        [ "$n" = 0 ] && break
        sleep 0.1
      done
      ;;
    *) sync ;;
  esac
}

# ---- workloads (each runs in a step) ----
w1_copy() { cp -r --preserve=timestamps "$SRCTREE" "$MP/pyhome" && sync_t; }
w9_prep() {
  mkdir -p "$MP/w9/src" || return 1
  local i
  for ((i = 0; i < W9_FILES; i++)); do printf 'file %d\n' "$i" >"$MP/w9/src/f$i" || return 1; done
  sync_t
}
w5_write() { dd if="$W/big.src" of="$MP/big" bs=4M status=none && sync_t; }
w4_find() { find "$MP/pyhome" -type f | wc -l >"$W/w4.out"; }
w4_ls() { ls -lR "$MP/pyhome" >/dev/null; }
w6_read() { dd if="$MP/big" of=/dev/null bs=4M status=none; }
w6m_read() { python3 "$HELPER" mmapread "$MP/big"; }
w8_read() { python3 "$HELPER" randread "$MP/big" "$RAND_N" 42; }
w9_mv() { mv "$MP/w9/src" "$MP/w9/dst" && sync_t; }
w9_rm() { rm -rf "$MP/pyhome" "$MP/w9" && sync_t; }
idle() {  # counters read right around the sleep: status (roamfs), RGW log offsets (S3 targets)
  local a b o0 o1
  case $CUR in roamfs-*) a=$(rfs_counts) ;; esac
  [ -n "$BUCKET" ] && { sleep 0.3; o0=$(rgw_off); }
  sleep "$IDLE_S"
  [ -n "$BUCKET" ] && { o1=$(rgw_off); sleep 0.3; echo "$o0 $o1" >"$W/idle.rgw"; }
  case $CUR in roamfs-*) b=$(rfs_counts); diff5 "$a" "$b" "$PROBE" >"$W/idle.req" ;; esac
}
export -f sync_t w1_copy w9_prep w5_write w4_find w4_ls w6_read w6m_read w8_read w9_mv w9_rm idle w2_import

# counters: roamfs status (minus the status call's own probe) and the RGW log
export PROBE="0 0 0 0 0"
rfs_counts() {
  local j
  j=$("$RFS" status "$MP" --json 2>/dev/null)
  printf '%s' "$j" | python3 "$HELPER" status 2>/dev/null || echo "x"
}
diff5() {  # BEFORE AFTER [SUBTRACT]: per-field differences of the first five fields
  awk -v a="$1" -v b="$2" -v p="${3:-0 0 0 0 0}" 'BEGIN{n=split(a,x," "); split(b,y," "); split(p,z," ");
    if (n < 5 || x[1]=="x" || y[1]=="x") { print "-"; exit }
    for (i=1;i<=5;i++){ d=y[i]-x[i]-z[i]; if (d<0) d=0; printf "%s%d", (i>1?" ":""), d }; printf "\n" }'
}
export -f rfs_counts diff5

# step KEY FUNC [N]: time FUNC (N times: the best time is recorded, all in KEY.runs), record
# seconds (or err/timeout/skip) and the request counts of the first run
step() {
  local key=$1 fn=$2 n=${3:-1} i t0 t1 rc c0="" c1="" o0="" o1="" s best="" runs=""
  if over_budget; then rec "$CUR" "$key" "skip"; log "$CUR: $key skipped (budget ${BUDGET}s spent)"; return 1; fi
  local cpu0 cpu1
  cpu0=$(dcpu)
  for ((i = 1; i <= n; i++)); do
    if ((i == 1)); then
      case $CUR in roamfs-*) c0=$(rfs_counts) ;; esac
      [ -n "$BUCKET" ] && { sleep 0.2; o0=$(rgw_off); }
    fi
    t0=$(now_us)
    bg_run "$STEP_TIMEOUT" "$fn"
    rc=$?
    t1=$(now_us)
    if ((i == 1)); then
      cpu1=$(dcpu)
      [ -n "$BUCKET" ] && { sleep 0.3; o1=$(rgw_off); }
      case $CUR in roamfs-*) c1=$(rfs_counts) ;; esac
    fi
    ((rc == 0)) || break
    s=$(secs "$t0" "$t1")
    runs="$runs${runs:+ }$s"
    [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN{exit !(a<b)}' && best=$s
  done
  if ((rc == 0)); then
    rec "$CUR" "$key" "$best"
    ((n > 1)) && rec "$CUR" "$key.runs" "$runs"
    s="$best${runs:+ (runs: $runs)}"
  elif ((rc == 124 || rc == 137)); then
    rec "$CUR" "$key" "timeout"; s="timeout after ${STEP_TIMEOUT}s"
  else
    rec "$CUR" "$key" "err$rc"; s="FAILED rc=$rc (see run.log)"
  fi
  [ -n "$c0" ] && rec "$CUR" "req.$key" "$(diff5 "$c0" "$c1" "$PROBE")"
  [ -n "$cpu0" ] && [ -n "$cpu1" ] && rec "$CUR" "cpu.$key" "$(awk -v a="$cpu0" -v b="$cpu1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f", (b-a)/t}')"
  if [ -n "$DPID" ] && pid_alive "$DPID"; then   # the daemon's peak RSS so far (this mount)
    rec "$CUR" "hwm.$key" "$(awk '/^VmHWM:/{print $2}' "/proc/$DPID/status" 2>/dev/null)"
  fi
  [ -n "$o0" ] && rec "$CUR" "rgw.$key" "$(python3 "$HELPER" rgw "$RGW_LOG" "$o0" "$o1" "$BUCKET")"
  log "$CUR: $key $s"
  return $rc
}

# measure_probe: what one `roamfs status` costs in store requests on this mount (it probes the
# store head and reads every host's heartbeat, so it grows with the hosts seen): subtracted
# from the status-counter differences
measure_probe() {
  [[ $CUR == roamfs-* ]] || return 0
  local a b c
  a=$(rfs_counts); b=$(rfs_counts); c=$(rfs_counts)
  PROBE=$(awk -v a="$(diff5 "$a" "$b")" -v b="$(diff5 "$b" "$c")" 'BEGIN{split(a,x," "); split(b,y," ");
    for (i=1;i<=5;i++) printf "%s%d", (i>1?" ":""), (x[i]<y[i]?x[i]:y[i]); printf "\n"}')
  rec "$CUR" "probe$GEN" "$PROBE"
}

# cold: unmount, drop the page cache, mount with a new empty cache dir; KEY times the mount
cold() {
  local key=${1:-} t0 t1 o0 o1 c
  t_umount
  drop_caches
  [ -n "$BUCKET" ] && o0=$(rgw_off)
  t0=$(now_us)
  t_mount || return 1
  t1=$(now_us)
  if [ -n "$key" ] && [ "$CUR" != local ]; then
    rec "$CUR" "$key" "$(secs "$t0" "$t1")"
    case $CUR in roamfs-*) c=$(rfs_counts); rec "$CUR" "req.$key" "$(diff5 "0 0 0 0 0" "$c" "$PROBE")" ;; esac
    [ -n "$BUCKET" ] && { sleep 0.3; o1=$(rgw_off); rec "$CUR" "rgw.$key" "$(python3 "$HELPER" rgw "$RGW_LOG" "$o0" "$o1" "$BUCKET")"; }
  fi
  measure_probe
  return 0
}

# cold_again KEY FN: BENCH_COLD_REPEAT-1 more runs of a cold step, each on a fresh mount with an
# empty cache and the page cache dropped; the best time counts (this VM's cold reads vary by
# up to 2x from run to run), the counters (requests, CPU, memory) stay the first run's.
cold_again() {
  local key=$1 fn=$2 i s best runs t0 t1 rc
  best=$(grep -P "^$CUR\t$key\t" "$RESULTS" | tail -1 | cut -f3)
  [[ $best =~ ^[0-9.]+$ ]] || return 0
  runs=$best
  for ((i = 2; i <= COLD_REPEAT; i++)); do
    over_budget && break
    cold || { rec "$CUR" na "remount failed: $NA"; return 1; }
    t0=$(now_us)
    bg_run "$STEP_TIMEOUT" "$fn"
    rc=$?
    t1=$(now_us)
    ((rc == 0)) || break
    s=$(secs "$t0" "$t1")
    runs="$runs $s"
    awk -v a="$s" -v b="$best" 'BEGIN{exit !(a<b)}' && best=$s
  done
  rec "$CUR" "$key" "$best"
  rec "$CUR" "$key.runs" "$runs"
  log "$CUR: $key $best (cold runs: $runs)"
}

run_target() {
  CUR=$1 MP="" CACHE="" DPID="" GEN=0 STORE_URL="" BUCKET="" NA="" RSS_MAX=0
  log "=== $CUR (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  rec "$CUR" loadavg "$(cut -d' ' -f1-3 /proc/loadavg)"
  if ! t_setup || ! t_mount; then
    rec "$CUR" na "$NA"; log "$CUR: n/a ($NA)"
    t_umount 2>/dev/null
    return
  fi
  PROBE="0 0 0 0 0"
  measure_probe

  if step W1 w1_copy; then
    local n
    n=$(find "$MP/pyhome" -type f 2>/dev/null | wc -l)
    [ "$n" = "$W1_FILES" ] || { rec "$CUR" note_w1 "W1 copied $n of $W1_FILES files"; log "$CUR: W1 copied $n of $W1_FILES files"; }
  fi
  step W9prep w9_prep
  step W5 w5_write

  # cold import, warm import, metadata walk on a fresh mount
  cold mount || { rec "$CUR" na "remount failed: $NA"; return; }
  if step W2 w2_import; then
    [ "$(cat "$W/w2.out" 2>/dev/null)" = "$W2_EXPECT" ] || rec "$CUR" note_w2 "W2 imported $(cat "$W/w2.out") modules, expected $W2_EXPECT"
  fi
  step W3 w2_import "$REPEAT"
  step W4find w4_find "$REPEAT"
  step W4ls w4_ls "$REPEAT"
  local f l
  f=$(grep -P "^$CUR\tW4find\t" "$RESULTS" | cut -f3); l=$(grep -P "^$CUR\tW4ls\t" "$RESULTS" | cut -f3)
  [[ $f =~ ^[0-9.]+$ && $l =~ ^[0-9.]+$ ]] && rec "$CUR" W4 "$(awk -v a="$f" -v b="$l" 'BEGIN{printf "%.3f", a+b}')"
  [ "$(cat "$W/w4.out" 2>/dev/null)" = "$W1_FILES" ] || rec "$CUR" note_w4 "W4 find saw $(cat "$W/w4.out" 2>/dev/null) files, expected $W1_FILES"

  # big sequential reads: cold, warm (page cache), warm with only the daemon's cache
  cold || { rec "$CUR" na "remount failed: $NA"; return; }
  step W6 w6_read
  step W7 w6_read "$REPEAT"
  drop_caches
  step W7s w6_read
  cold_again W6 w6_read || return

  cold || { rec "$CUR" na "remount failed: $NA"; return; }
  step W6m w6m_read
  cold_again W6m w6m_read || return

  cold || { rec "$CUR" na "remount failed: $NA"; return; }
  step W8c w8_read
  step W8w w8_read "$REPEAT"
  if [ "$CUR" != local ]; then
    rm -f "$W/idle.req" "$W/idle.rgw"
    if step idle idle; then
      [ -s "$W/idle.req" ] && rec "$CUR" req.idle "$(cat "$W/idle.req")"
      # shellcheck disable=SC2046
      [ -s "$W/idle.rgw" ] && rec "$CUR" rgw.idle "$(python3 "$HELPER" rgw "$RGW_LOG" $(cat "$W/idle.rgw") "$BUCKET")"
    fi
  fi
  step W9mv w9_mv
  step W9rm w9_rm
  cold_again W8c w8_read || return
  # free the RGW's RAM and the disk before the next target (not timed)
  rm -f "$MP/big"
  bg_run 120 sync_t
  t_umount
  ((RSS_MAX > 0)) && rec "$CUR" rss_kb "$RSS_MAX"
  rm -rf "${W:?}/$CUR"
}

# The FUSE floor: W1 into tests/bench/nullfs.c, a FUSE file system that keeps names and
# attributes in memory and drops data (the same mount options and capabilities as roamfs).
# What any FUSE file system pays for the kernel's requests alone; `report` shows it next to W1.
fuse_floor() {
  CUR=fuse-floor MP=$W/fuse-floor/mp DPID="" BUCKET=""
  mkdir -p "$MP"
  # shellcheck disable=SC2046
  if ! cc -std=c11 -D_GNU_SOURCE -O2 -o "$W/nullfs" "$HERE/nullfs.c" $(pkg-config fuse3 --cflags --libs) >>"$RUNLOG" 2>&1; then
    rec "$CUR" na "cannot build tests/bench/nullfs.c (see run.log)"; return
  fi
  "$W/nullfs" "$MP" >>"$RUNLOG" 2>&1 &
  DPID=$!
  PIDS+=("$DPID"); MOUNTS+=("$MP")
  if ! wait_mounted "$DPID" 20; then
    rec "$CUR" na "nullfs did not mount"
    kill -TERM "$DPID" 2>/dev/null; fusermount3 -uz "$MP" 2>/dev/null; DPID=""
    return
  fi
  step W1 w1_copy
  fusermount3 -u "$MP" 2>>"$RUNLOG" || fusermount3 -uz "$MP" 2>/dev/null
  local i; for ((i = 0; i < 50; i++)); do pid_alive "$DPID" || break; sleep 0.1; done
  pid_alive "$DPID" && kill -TERM "$DPID"
  DPID=""
}
FLOOR_DONE=0
[ "${BENCH_FLOOR:-1}" = 1 ] || FLOOR_DONE=1

for t in ${TARGETS//,/ }; do
  # the floor right before the first FUSE target: the conditions its W1 is compared in
  if [ "$t" != local ] && [ "$FLOOR_DONE" = 0 ]; then fuse_floor; FLOOR_DONE=1; fi
  case $t in
    local|roamfs-file|roamfs-s3|s3fs|rclone) run_target "$t" ;;
    *) log "unknown target '$t' (known: local roamfs-file roamfs-s3 s3fs rclone)" ;;
  esac
done

rec _ elapsed "$((SECONDS - T_START))"
log "done in $((SECONDS - T_START)) s"
python3 "$HELPER" report "$RESULTS" >"$W/report.txt" 2>>"$RUNLOG"
echo "" >>"$W/report.txt"
echo "total run time: $((SECONDS - T_START)) s; raw results: $OUT/results.tsv, log: $OUT/run.log" >>"$W/report.txt"
cat "$W/report.txt"
