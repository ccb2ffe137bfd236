#!/usr/bin/env python3
"""Helpers for tests/bench/run.sh (stdlib only).

  bench.py mmapread FILE                 touch every 4 KiB page of FILE through mmap, in order
  bench.py randread FILE COUNT SEED      COUNT random 4 KiB-aligned preads of 4 KiB (fixed seed)
  bench.py status                        read `roamfs status --json` on stdin, print
                                         "get put list head delete bytes_in bytes_out pid"
  bench.py rgw LOG START END BUCKET      count RGW requests on BUCKET logged between byte offsets
                                         START and END of the RGW log: "get put list head delete post"
  bench.py report RESULTS.tsv            print the tables (times, ratios, throughput, requests,
                                         memory, issue-6 targets) from the results file
"""
import json
import mmap
import os
import random
import re
import sys

PAGE = 4096


def mmapread(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            print(0)
            return
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        s = 0
        for off in range(0, size, PAGE):  # one byte per page: a page fault per 4 KiB, in order
            s += m[off]
        m.close()
        print(size, s & 0xFF)
    finally:
        os.close(fd)


def randread(path, count, seed):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pages = size // PAGE
        rnd = random.Random(seed)
        got = 0
        for _ in range(count):
            off = rnd.randrange(pages) * PAGE
            b = os.pread(fd, PAGE, off)
            if len(b) != PAGE:
                sys.exit("short read at %d: %d bytes" % (off, len(b)))
            got += len(b)
        print(got)
    finally:
        os.close(fd)


def status():
    d = json.load(sys.stdin)["mounts"][0]
    keys = ("req_get", "req_put", "req_list", "req_head", "req_delete", "bytes_in", "bytes_out", "pid")
    print(" ".join(str(int(d.get(k, 0) or 0)) for k in keys))


BEAST = re.compile(r'"(GET|PUT|HEAD|POST|DELETE) (/[^ ?]*)(\?[^ ]*)? HTTP/[0-9.]+" (\d+)')


def rgw(log, start, end, bucket):
    c = {"get": 0, "put": 0, "list": 0, "head": 0, "delete": 0, "post": 0}
    with open(log, "rb") as f:
        f.seek(start)
        data = f.read(max(0, end - start)).decode("utf-8", "replace")
    for line in data.splitlines():
        if " beast: " not in line:
            continue
        m = BEAST.search(line)
        if not m:
            continue
        meth, path, query = m.group(1), m.group(2), m.group(3) or ""
        parts = path.lstrip("/").split("/", 1)
        if parts[0] != bucket:
            continue
        key = parts[1] if len(parts) > 1 else ""
        if meth == "GET":
            c["list" if key == "" else "get"] += 1
        else:
            c[meth.lower()] += 1
    print(" ".join(str(c[k]) for k in ("get", "put", "list", "head", "delete", "post")))


# ---------------------------------------------------------------------------------------------
# report

TARGETS = ["local", "roamfs-file", "roamfs-s3", "s3fs", "rclone"]
PEERS = ["s3fs", "rclone"]
ROWS = [
    ("mount", "cold mount (empty cache; not in W2)"),
    ("W1", "copy stdlib tree + sync"),
    ("W2", "cold import (fresh mount)"),
    ("W3", "warm import"),
    ("W4", "find + ls -lR"),
    ("W4find", "  find -type f | wc -l"),
    ("W4ls", "  ls -lR"),
    ("W5", "big write + sync"),
    ("W6", "big read cold"),
    ("W7", "big read warm (page cache)"),
    ("W7s", "big read warm (daemon cache)"),
    ("W6m", "mmap read cold"),
    ("W8c", "random 4K preads cold"),
    ("W8w", "random 4K preads warm"),
    ("W9mv", "rename dir of 1000 files"),
    ("W9rm", "rm -rf tree + sync"),
]
REQ_ROWS = ["mount", "W1", "W9prep", "W5", "W2", "W3", "W4", "W6", "W7", "W7s", "W6m", "W8c",
            "W8w", "idle", "W9mv", "W9rm"]


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t", 2)
            if len(parts) < 3:
                continue
            res.setdefault(parts[0], {})[parts[1]] = parts[2]
    return res


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt_t(v):
    if v is None:
        return "-"
    f = num(v)
    if f is None:
        return str(v)[:14]
    return "%.2f" % f if f < 100 else "%.0f" % f


def fmt_r(a, b):
    a, b = num(a), num(b)
    if a is None or b is None or b <= 0:
        return "-"
    return "%.2fx" % (a / b)


def report(path):
    res = load(path)
    meta = res.get("_", {})
    targets = [t for t in TARGETS if t in res]
    out = []
    p = out.append
    p("roamfs benchmark  %s" % meta.get("date", ""))
    for k in ("machine", "roamfs", "w1", "big", "quick", "notes"):
        if k in meta:
            p("  %-8s %s" % (k, meta[k]))
    p("")
    loads = ["%s %s" % (t, res[t]["loadavg"]) for t in targets if "loadavg" in res[t]]
    if loads:
        p("  load average at the start of each target (2 cores; other work on the machine shows here):")
        p("    " + ";  ".join(loads))
    for t in targets:
        if "na" in res[t]:
            p("  %-12s n/a (%s)" % (t, res[t]["na"]))
    if any("na" in res[t] for t in targets):
        p("")

    def val(t, k):
        if t not in res:
            return None
        if "na" in res[t]:
            return "n/a"
        return res[t].get(k)

    def best_peer(k):
        vals = [num(val(t, k)) for t in PEERS]
        vals = [v for v in vals if v is not None]
        return min(vals) if vals else None

    # times and ratios
    w = 30
    hdr = "%-*s" % (w, "seconds (lower is better)") + "".join("%13s" % t for t in targets)
    ratio_cols = []
    for rt in ("roamfs-file", "roamfs-s3"):
        if rt in targets:
            if "local" in targets:
                ratio_cols.append((rt, "local"))
            ratio_cols.append((rt, "peer"))
    short = {"roamfs-file": "file", "roamfs-s3": "s3"}
    hdr += "  |" + "".join("%12s" % ("%s/%s" % (short[a], b)) for a, b in ratio_cols)
    p(hdr)
    p("-" * len(hdr))
    for key, label in ROWS:
        if not any(val(t, key) is not None for t in targets):
            continue
        line = "%-*s" % (w, "%-6s %s" % (key, label))
        for t in targets:
            line += "%13s" % fmt_t(val(t, key))
        line += "  |"
        for a, b in ratio_cols:
            if b == "local":
                line += "%12s" % fmt_r(val(a, key), val("local", key))
            else:
                line += "%12s" % fmt_r(val(a, key), best_peer(key))
        p(line)
    p("ratios: roamfs time / local time and roamfs time / best peer time (min of s3fs, rclone);"
      " < 1 means roamfs is faster.")
    floor = res.get("fuse-floor", {})
    if "na" in floor:
        p("FUSE floor: n/a (%s)" % floor["na"])
    elif num(floor.get("W1")):
        f1 = num(floor.get("W1"))
        line = ("FUSE floor (tests/bench/nullfs.c: the kernel's FUSE requests and nothing else): "
                "W1 %.2f s" % f1)
        if num(val("local", "W1")):
            line += " = %.2fx local" % (f1 / num(val("local", "W1")))
        for t in ("roamfs-file", "roamfs-s3"):
            if num(val(t, "W1")):
                line += "; %s W1 = %.2fx the floor" % (t, num(val(t, "W1")) / f1)
        p(line)
    p("")

    # throughput
    big = num(meta.get("big_mb"))
    srv = res.get("server", {})
    if big:
        p("throughput MiB/s   " + "".join("%13s" % t for t in targets))
        for key in ("W5", "W6", "W7", "W7s", "W6m"):
            line = "%-19s" % key
            for t in targets:
                v = num(val(t, key))
                line += "%13s" % ("%.0f" % (big / v) if v else "-")
            p(line)
        if srv:
            put, get = num(srv.get("put_mibs")), num(srv.get("get_mibs"))
            p("server ceiling (curl, one %s MiB object on the RGW): PUT %s MiB/s, GET %s MiB/s"
              % (srv.get("mb", "?"), "%.0f" % put if put else srv.get("put_mibs", "-"),
                 "%.0f" % get if get else srv.get("get_mibs", "-")))
            if get:
                line = "cold read W6 as a fraction of the server GET:"
                for t in ("roamfs-s3", "s3fs", "rclone"):
                    v = num(val(t, "W6"))
                    if v:
                        line += "  %s %.0f%%" % (t, 100.0 * big / v / get)
                p(line)
        loc6 = num(val("local", "W6"))
        if loc6 and num(val("roamfs-file", "W6")):
            p("roamfs-file cold read W6 as a fraction of local disk W6: %.0f%%"
              % (100.0 * loc6 / num(val("roamfs-file", "W6"))))
        p("")

    # requests
    reqt = [t for t in targets if t != "local" and "na" not in res[t]]
    if reqt:
        cols = []
        for t in reqt:
            if t.startswith("roamfs"):
                cols.append((t, "req", "%s" % t))
            if t != "roamfs-file":
                cols.append((t, "rgw", "%s(rgw)" % t if t.startswith("roamfs") else t))
        p("store requests per workload  GET/PUT/LIST/HEAD/DELETE[+POST]  "
          "(roamfs: `roamfs status --json` differences; (rgw)/peers: the RGW access log)")
        p("%-8s" % "" + "".join("%22s" % c[2] for c in cols))
        for key in REQ_ROWS:
            cells = []
            for t, kind, _ in cols:
                v = res[t].get("%s.%s" % (kind, key))
                if v is None:
                    cells.append("-")
                    continue
                f = v.split()
                s = "/".join(f[:5])
                if len(f) > 5 and f[5] != "0":
                    s += "+%s" % f[5]
                cells.append(s)
            if all(c == "-" for c in cells):
                continue
            p("%-8s" % key + "".join("%22s" % c for c in cells))
        idle = meta.get("idle_s")
        if idle:
            p("(idle = %s s of an idle mount after the W8 reads)" % idle)
        p("")

    # daemon CPU, step by step (less sensitive to a busy machine than wall-clock times)
    cput = [t for t in targets if t != "local" and "na" not in res[t]
            and any(k.startswith("cpu.") for k in res[t])]
    if cput:
        p("daemon CPU seconds (user+sys) per step (first run of repeated steps)")
        p("%-8s" % "" + "".join("%13s" % t for t in cput))
        for key in REQ_ROWS:
            cells = [res[t].get("cpu.%s" % key, "-") for t in cput]
            if all(c == "-" for c in cells):
                continue
            p("%-8s" % key + "".join("%13s" % c for c in cells))
        p("")

    # memory, step by step
    memt = [t for t in targets if t != "local" and "na" not in res[t]
            and any(k.startswith("hwm.") for k in res[t])]
    if memt:
        p("daemon VmHWM (MiB) after each step (a new daemon is started before W2, W6, W6m and W8c)")
        p("%-8s" % "" + "".join("%13s" % t for t in memt))
        for key in REQ_ROWS:
            cells = []
            for t in memt:
                v = num(res[t].get("hwm.%s" % key))
                cells.append("%.0f" % (v / 1024) if v else "-")
            if all(c == "-" for c in cells):
                continue
            p("%-8s" % key + "".join("%13s" % c for c in cells))
        p("")
    p("peak RSS of the FUSE daemon (VmHWM, max over its mounts):  " + "  ".join(
        "%s %s" % (t, ("%.0f MiB" % (num(res[t]["rss_kb"]) / 1024)) if num(res[t].get("rss_kb")) else "-")
        for t in targets if t != "local" and "na" not in res[t]))
    p("")

    # issue-6 targets
    p("issue-6 targets:")
    for line in verdicts(res, meta, val, best_peer):
        p("  " + line)
    notes = [(t, k, v) for t in targets for k, v in res[t].items() if k.startswith("note")]
    for t in targets:
        probes = [res[t][k] for k in sorted(res[t]) if k.startswith("probe")]
        if probes:
            notes.append((t, "probe", "one `roamfs status` cost GET PUT LIST HEAD DEL = %s on its %d mounts "
                          "(subtracted from the status counts)" % (" | ".join(probes), len(probes))))
    if notes:
        p("")
        p("notes:")
        for t, k, v in notes:
            p("  %s: %s" % (t, v))
    print("\n".join(out))


def verdicts(res, meta, val, best_peer):
    out = []
    big = num(meta.get("big_mb"))
    srv_get = num(res.get("server", {}).get("get_mibs"))
    files = num(meta.get("w1_files"))

    def mark(ok):
        return "MET   " if ok else "MISSED"

    for t in ("roamfs-s3", "roamfs-file"):
        if t not in res or "na" in res[t]:
            continue
        v = lambda k: num(val(t, k))
        loc = lambda k: num(val("local", k))
        s3fs = lambda k: num(val("s3fs", k))

        def ratio_local(k, lim, what):
            a, b = v(k), loc(k)
            if a is not None and b:
                out.append("%s %-11s %-4s %-34s %.2fx local (target <= %.1fx)"
                           % (mark(a / b <= lim), t, k, what, a / b, lim))

        def faster_s3fs(k, lim, what):
            a, b = v(k), s3fs(k)
            if a and b:
                out.append("%s %-11s %-4s %-34s %.1fx faster than s3fs (target >= %.0fx)"
                           % (mark(b / a >= lim), t, k, what, b / a, lim))

        ratio_local("W2", 2.0, "cold import")
        faster_s3fs("W2", 10, "cold import")
        ratio_local("W3", 1.3, "warm import")
        ratio_local("W1", 3.0, "small files")
        faster_s3fs("W1", 10, "small files")
        ratio_local("W4", 1.5, "metadata walk")
        if big and v("W6"):
            if t == "roamfs-s3" and srv_get:
                frac = big / v("W6") / srv_get
                out.append("%s %-11s %-4s %-34s %.0f%% of server GET (target >= 90%%)"
                           % (mark(frac >= 0.9), t, "W6", "cold sequential read", 100 * frac))
            elif t == "roamfs-file" and loc("W6"):
                frac = loc("W6") / v("W6")
                out.append("%s %-11s %-4s %-34s %.0f%% of local disk cold read (no server; "
                           "target >= 90%%)" % (mark(frac >= 0.9), t, "W6", "cold sequential read", 100 * frac))
        for k in ("W7", "W7s"):
            if v(k) and loc(k):
                frac = loc(k) / v(k)
                out.append("%s %-11s %-4s %-34s %.0f%% of local (target >= 80%%)"
                           % (mark(frac >= 0.8), t, k, "warm read" + (" (daemon cache)" if k == "W7s" else ""), 100 * frac))
        if v("W6m") and v("W6"):
            r = v("W6m") / v("W6")
            out.append("%s %-11s %-4s %-34s %.2fx W6 (target <= 1.5x)" % (mark(r <= 1.5), t, "W6m", "mmap cold read", r))
        ratio_local("W8w", 2.0, "random reads warm")
        req = res[t].get("rgw.W1") or res[t].get("req.W1")
        if req and files and req != "-":
            f = [int(x) for x in req.split()]
            puts = f[1] + (f[5] if len(f) > 5 else 0)
            out.append("%s %-11s %-4s %-34s %d PUTs for %d files = %.2f per 100 (target <= 1)"
                       % (mark(puts / files * 100 <= 1), t, "W10", "W1 PUTs per 100 files", puts, files, puts / files * 100))
        # the RGW log sees exactly the idle window; the status counters also see the calls around it
        src = "rgw" if res[t].get("rgw.idle") else "req"
        idle = res[t].get("%s.idle" % src)
        idle_s = num(meta.get("idle_s"))
        if idle and idle_s and idle != "-":
            f = [int(x) for x in idle.split()]
            tot = sum(f)
            out.append("%s %-11s %-4s %-34s %.2f req/s, %d LIST in %.0f s (target <= 1/s, no LIST; %s)"
                       % (mark(tot / idle_s <= 1 and f[2] == 0), t, "W10", "idle mount", tot / idle_s, f[2], idle_s,
                          "RGW log" if src == "rgw" else "status counters"))
        rss = num(res[t].get("rss_kb"))
        if rss:
            out.append("%s %-11s %-4s %-34s %.0f MiB peak RSS (target < 300 MiB)"
                       % (mark(rss / 1024 < 300), t, "mem", "daemon memory", rss / 1024))
    if not out:
        out.append("(no roamfs results)")
    return out


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd = a[0]
    if cmd == "mmapread":
        mmapread(a[1])
    elif cmd == "randread":
        randread(a[1], int(a[2]), int(a[3]))
    elif cmd == "status":
        status()
    elif cmd == "rgw":
        rgw(a[1], int(a[2]), int(a[3]), a[4])
    elif cmd == "report":
        report(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
