#!/usr/bin/env bash
# tests/s3/ceph.sh - roamfs's own copy of the team's ceph-s3.sh: a throwaway single-node Ceph
# cluster with the RADOS Gateway (RGW), used as a local, real S3 server for the s3 store's
# tests (honours conditional PUT: If-None-Match: * and If-Match: <etag>, unlike s3rver).
# The ctest fixture in tests/s3/CMakeLists.txt starts it into BUILD/ceph and stops it at the
# end; tests read the endpoint and keys from DIR/env.
#
# Differences from the original: PORT may be "auto" (so that concurrent test runs on one
# machine do not collide); `start` honours ROAMFS_TEST_S3=0 (do not start; exit 0 and
# remove DIR/env, so the live tests skip) and RFS_CEPH_OPTIONAL=1 (when the packages are
# missing and cannot be installed - not root, no apt, no network - say SKIP and exit 0
# instead of failing, again leaving no DIR/env). Everything else is unchanged.
#
# Usage:
#   ceph.sh start DIR [PORT]         start a fresh cluster whose state lives in DIR; S3 on
#                                 http://127.0.0.1:PORT (default 4600; "auto": a free range
#                                 of 21 ports, or the one DIR already serves on). On success prints
#                                 (stdout, eval-able) and writes DIR/env:
#                                   export S3_ENDPOINT=http://127.0.0.1:PORT
#                                   export AWS_ACCESS_KEY_ID=...  AWS_SECRET_ACCESS_KEY=...
#                                   export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
#                                 On failure: exits non-zero, log excerpts on stderr, and
#                                 stops whatever it had started.
#   ceph.sh stop DIR              stop the daemons whose PIDs are recorded in DIR/pids
#                                 (SIGTERM, then SIGKILL after 10 s). Logs are kept.
#   ceph.sh status DIR            exit 0 and print the env if the cluster in DIR is serving.
#   ceph.sh env DIR               print DIR/env (what start printed).
#
#   Typical CI use:   eval "$(tests/s3/ceph.sh start /tmp/s3 4600)"; run tests; tests/s3/ceph.sh stop /tmp/s3
#
# Ports: RGW (beast) on PORT, the monitor on PORT+1, the OSD on PORT+2..PORT+20
# (msgr2 only). Everything binds to 127.0.0.1 only.
# Data: memstore OSD - objects live in the OSD's RAM (only what is stored is allocated).
# CEPH_S3_MEM_BYTES (default 4 GiB) is its capacity: once ~97% of it holds live data (deleted
# or overwritten data is freed by RGW's GC 30-60 s later), every write - PUT and DELETE
# alike - HANGS without an error (no mgr, so no FULL flag/ENOSPC); reads still work.
# Data does NOT survive stop: every start builds a fresh cluster (mkfs) in DIR (~2-4 s;
# up to ~9 s on a loaded machine; first install of the packages adds ~50-60 s).
# cephx is off (auth none) inside the cluster; S3 requests are still authenticated (SigV4).
# S3 user: CEPH_S3_ACCESS_KEY / CEPH_S3_SECRET_KEY (fixed defaults below). Path style
# (http://127.0.0.1:PORT/BUCKET/KEY) and virtual-hosted style (http://BUCKET.localhost:PORT/KEY;
# curl/libcurl resolve *.localhost to loopback) both work; any region name signs (us-east-1
# is printed). With curl --aws-sigv4 add -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD'
# (curl 7.88 does not send it and RGW then answers 403 SignatureDoesNotMatch).
# Missing packages (ceph-mon ceph-osd radosgw ceph-common, Debian 12: Ceph 16.2 Pacific,
# ~66 MB download, ~265 MB installed) are installed with apt-get --no-install-recommends
# (needs root). Idempotent: `start` on a DIR that is already serving on PORT just prints
# the env; a half-dead cluster in DIR is stopped and rebuilt. Only processes whose PIDs
# it recorded (and whose command line names DIR/ceph.conf) are ever signalled.
#
# RGW quirks a client must know (Ceph 16.2.15):
#  * PUT If-Match must carry the ETag WITHOUT quotes (If-Match: 5eb63b...); the quoted
#    form that ETag headers return ("5eb63b...") never matches -> 412.
#  * Losers of a concurrent If-Match race can get 500 InternalError (ECANCELED) instead
#    of 412; exactly one writer wins. Treat 5xx on a conditional PUT as "re-read".
#  * If-Match on a missing key gives 412 (AWS: 404). CompleteMultipartUpload ignores
#    If-None-Match.
set -euo pipefail

ACCESS_KEY=${CEPH_S3_ACCESS_KEY:-CEPHS3TESTACCESSKEY0}
SECRET_KEY=${CEPH_S3_SECRET_KEY:-cephs3testsecretkey0000000000000000000000}
MEM_BYTES=${CEPH_S3_MEM_BYTES:-4294967296}
START_TIMEOUT=${CEPH_S3_START_TIMEOUT:-120}
PKGS="ceph-mon ceph-osd radosgw ceph-common"
DAEMONS="rgw osd mon"

unset CEPH_ARGS CEPH_CONF || true

log() { printf '[ceph-s3] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

absdir() {
    local d=$1
    [[ -n $d ]] || usage
    [[ $d == /* ]] || d="$PWD/$d"
    d=$(realpath -m "$d")
    [[ $d != / && $d =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "DIR must be a plain path without spaces or odd characters: $1"
    printf '%s' "$d"
}

# optional_skip WHY: with RFS_CEPH_OPTIONAL=1, report SKIP and end `start` successfully
# without an env file (the live tests then skip themselves); otherwise return.
optional_skip() {
    [[ ${RFS_CEPH_OPTIONAL:-0} == 1 ]] || return 0
    log "SKIP: $1"
    rm -f "$D/env"
    exit 0
}

ensure_packages() {
    local b missing=0
    for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
        command -v "$b" >/dev/null 2>&1 || missing=1
    done
    [[ $missing == 0 ]] && return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        optional_skip "Ceph packages missing and not root (or no apt-get): apt-get install --no-install-recommends $PKGS"
        die "Ceph packages missing and not root: apt-get install --no-install-recommends $PKGS"
    fi
    log "installing $PKGS (apt, --no-install-recommends) ..."
    local t0 aptlog=$1/apt.log; t0=$(now)
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update >"$aptlog" 2>&1 || log "apt-get update failed (continuing)"
    # shellcheck disable=SC2086
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $PKGS >>"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        optional_skip "apt-get install $PKGS failed (full output: $aptlog)"
        die "apt-get install $PKGS failed (full output: $aptlog)"
    fi
    log "installed in $(since "$t0") s (apt output: $aptlog)"
}

# alive PID NAME DIR: the process exists, is not a zombie, and is our daemon for DIR
alive() {
    local pid=$1 d=$3
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    local st cmdline
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $st != Z && $st != X ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"-c $d/ceph.conf "* ]]
}

# probe PORT: RGW answers GET / with HTTP 200 (anonymous ListBuckets), no curl needed
probe() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3
        IFS= read -r line <&3 || exit 1
        [[ $line == "HTTP/1."?" 200"* ]]' _ "$1" 2>/dev/null
}

port_busy() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# free_port: the first of 21 consecutive free ports (RGW, monitor, OSD range), picked at random
free_port() {
    local base i tries
    for ((tries = 0; tries < 200; tries++)); do
        base=$((20000 + (RANDOM % 1600) * 25))
        for ((i = 0; i <= 20; i++)); do port_busy $((base + i)) && continue 2; done
        echo "$base"
        return 0
    done
    die "no free range of 21 ports found on 127.0.0.1"
}

excerpt() {
    local d=$1 f
    for f in "$d"/log/*.log "$d"/log/*.out; do
        [[ -s $f ]] || continue
        printf '==> %s <==\n' "$f" >&2
        grep -vE 'send_auth_request get_initial_auth_request|^\s*$' "$f" | tail -n 25 >&2 || true
    done
}

# term_wait DIR NAME...: SIGTERM the recorded daemons, wait up to 10 s, then SIGKILL
term_wait() {
    local d=$1 name pid pids=() i; shift
    for name in "$@"; do
        pid=$(cat "$d/pids/$name" 2>/dev/null || true)
        if [[ -n $pid ]] && alive "$pid" "$name" "$d"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    for ((i = 0; i < 150 && ${#pids[@]} > 0; i++)); do
        ((i == 100)) && for pid in "${pids[@]}"; do
            log "pid $pid did not exit 10 s after SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        done
        local left=()
        for pid in "${pids[@]}"; do alive "$pid" x "$d" && left+=("$pid"); done
        pids=(${left[@]+"${left[@]}"})
        ((${#pids[@]} == 0)) || sleep 0.1
    done
}

stop_dir() {    # DIR [quiet]
    local d=$1 quiet=${2:-} t0
    [[ -d $d/pids ]] || { [[ -n $quiet ]] || log "nothing recorded in $d/pids"; return 0; }
    t0=$(now)
    # one at a time, clients before servers: radosgw hangs in shutdown (unwatch) once the
    # OSD is gone, and an OSD whose monitor is gone waits osd_mon_shutdown_timeout
    term_wait "$d" rgw
    term_wait "$d" osd
    term_wait "$d" mon
    rm -rf "$d/pids"
    log "stopped in $(since "$t0") s"
    return 0
}

running_ok() {    # DIR PORT(optional): all three daemons alive and S3 answering
    local d=$1 port=${2:-} name
    [[ -f $d/env && -d $d/pids ]] || return 1
    for name in $DAEMONS; do alive "$(cat "$d/pids/$name" 2>/dev/null || true)" "$name" "$d" || return 1; done
    local p; p=$(cat "$d/port" 2>/dev/null || true)
    [[ -z $port || $p == "$port" ]] || return 2
    probe "$p"
}

write_conf() {
    local d=$1 port=$2 fsid=$3 asok
    asok="$d/run/\$name.asok"
    ((${#d} > 80)) && asok=""     # unix socket paths are limited to 107 bytes
    cat >"$d/ceph.conf" <<EOF
# generated by ceph-s3.sh - single-node throwaway cluster, loopback only
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$((port + 1))
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind msgr2 = true
ms bind port min = $((port + 2))
ms bind port max = $((port + 20))
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
keyring = /dev/null
run dir = $d/run
admin socket = $asok
pid file = $d/run/\$name.pid
log file = $d/log/\$name.log
mon cluster log file = default=$d/log/\$cluster.\$channel.log cluster=$d/log/\$cluster.log
crash dir = $d/crash
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
# commit map changes at once instead of batching them for 1 s (RGW start-up makes ~20)
paxos propose interval = 0.01
paxos min wait = 0.01

[mon]
mon data = $d/mon/\$cluster-\$id

[osd]
osd data = $d/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEM_BYTES
osd op num shards = 2
osd op num threads per shard = 1
osd mon shutdown timeout = 2

[client]
rgw data = $d/rgw

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw thread pool size = 32
# virtual-hosted style on http://BUCKET.localhost:PORT (curl resolves *.localhost to
# loopback itself); path style keeps working on 127.0.0.1 and localhost
rgw dns name = localhost
# reclaim deleted/overwritten data quickly (it lives in RAM)
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw dynamic resharding = false
EOF
}

launch() {    # DIR NAME cmd...  (foreground daemon in background, PID recorded)
    local d=$1 name=$2; shift 2
    "$@" </dev/null >>"$d/log/$name.out" 2>&1 9>&- &
    echo $! >"$d/pids/$name"
    disown $! 2>/dev/null || true
}

ceph_cli() { timeout 60 ceph -c "$CONF" --connect-timeout 50 "$@"; }

start_dir() {
    local d=$1 port=$2 t0 fsid ouuid id rc
    [[ $port =~ ^[0-9]+$ ]] && ((port >= 1024 && port + 20 <= 65535)) || die "bad PORT: $port"
    mkdir -p "$d"
    exec 9>"$d/.lock"
    flock -w 300 9 || die "another ceph-s3.sh holds $d/.lock"

    rc=0; running_ok "$d" "$port" || rc=$?
    if [[ $rc == 0 ]]; then log "already running in $d"; cat "$d/env"; return 0; fi
    if [[ $rc == 2 ]]; then die "a cluster is already running in $d on port $(cat "$d/port"); stop it first"; fi
    stop_dir "$d" quiet      # leftovers of a half-dead cluster (only our recorded PIDs)

    ensure_packages "$d"
    local p
    for p in "$port" $((port + 1)); do port_busy "$p" && die "port $p on 127.0.0.1 is already in use"; done

    t0=$(now)
    rm -rf "$d/mon" "$d/osd" "$d/rgw" "$d/run" "$d/log" "$d/crash" "$d/pids" "$d/monmap" "$d/env" "$d/port" "$d/ceph.conf"
    mkdir -p "$d/mon" "$d/osd/ceph-0" "$d/rgw" "$d/run" "$d/log" "$d/pids"
    echo "$port" >"$d/port"
    CONF="$d/ceph.conf"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$d" "$port" "$fsid"

    trap 'rc=$?; if [[ $rc != 0 ]]; then log "start failed (rc=$rc); log excerpts:"; excerpt "$D"; stop_dir "$D"; fi' EXIT

    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$((port + 1))]" \
        --enable-all-features --set-min-mon-release pacific "$d/monmap" >"$d/log/mkfs.out" 2>&1
    ceph-mon -c "$CONF" -i a --mkfs --monmap "$d/monmap" >>"$d/log/mkfs.out" 2>&1
    launch "$d" mon ceph-mon -f -c "$CONF" -i a
    log "mon started (pid $(cat "$d/pids/mon"))"

    ouuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(ceph_cli osd new "$ouuid" 2>>"$d/log/mkfs.out") || die "'ceph osd new' failed (monitor not reachable?)"
    [[ $id == 0 ]] || die "unexpected osd id '$id'"
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$ouuid" >>"$d/log/mkfs.out" 2>&1
    launch "$d" osd ceph-osd -f -c "$CONF" -i 0
    log "osd started (pid $(cat "$d/pids/osd"))"

    # RGW waits by itself for the OSD; it creates its pools on first start
    launch "$d" rgw radosgw -f -c "$CONF" -n client.rgw.a
    log "radosgw started (pid $(cat "$d/pids/rgw"))"

    local deadline name
    deadline=$(($(date +%s) + START_TIMEOUT))
    until probe "$port"; do
        for name in $DAEMONS; do
            alive "$(cat "$d/pids/$name")" "$name" "$d" || die "$name exited during start-up"
        done
        (($(date +%s) < deadline)) || die "S3 not answering on 127.0.0.1:$port after ${START_TIMEOUT}s"
        sleep 0.25
    done
    log "S3 answering after $(since "$t0") s"

    timeout 60 radosgw-admin -c "$CONF" user create --uid=test --display-name="ceph-s3 test user" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$d/log/user.out" 2>&1 \
        || die "radosgw-admin user create failed"

    cat >"$d/env" <<EOF
export S3_ENDPOINT=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
EOF
    trap - EXIT
    log "ready in $(since "$t0") s: S3 at http://127.0.0.1:$port (data in RAM, state in $d)"
    cat "$d/env"
}

cmd=${1:-}
case $cmd in
start)  [[ $# -ge 2 && $# -le 3 ]] || usage; D=$(absdir "$2")
        if [[ ${ROAMFS_TEST_S3:-1} == 0 ]]; then
            log "ROAMFS_TEST_S3=0: not starting RGW"; rm -f "$D/env"; exit 0
        fi
        P=${3:-4600}
        if [[ $P == auto ]]; then
            if running_ok "$D"; then P=$(cat "$D/port"); else P=$(free_port); fi
        fi
        start_dir "$D" "$P" ;;
stop)   [[ $# -eq 2 ]] || usage; D=$(absdir "$2")
        if [[ -d $D ]]; then exec 9>"$D/.lock"; flock -w 300 9 || die "another ceph-s3.sh holds $D/.lock"; fi
        stop_dir "$D" ;;
status) [[ $# -eq 2 ]] || usage; D=$(absdir "$2")
        if running_ok "$D"; then cat "$D/env"; else log "not running in $D"; exit 1; fi ;;
env)    [[ $# -eq 2 ]] || usage; D=$(absdir "$2"); cat "$D/env" ;;
*)      usage ;;
esac
