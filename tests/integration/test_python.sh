#!/usr/bin/env bash
# A real-world small-file workload: the Python standard library (~1k files, .py and C extension
# .so files) copied into the mount with tar, then imported FROM THE MOUNT by a Python that is
# told to ignore its own stdlib for anything not already loaded at startup. The import writes
# __pycache__/*.pyc into the mount (mkdir + temp file + rename), and an SQLite database on the
# mount gets a few transactions. Checked: the tree equals a local reference extraction (diff -r,
# plus mode/size/mtime-ns/type/link-target manifest), every newly imported module came from the
# mount, the .pyc files and the database survive a remount with a brand-new empty cache, and
# Python did not have to rewrite any .pyc after it (it would if source mtimes or sizes changed).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ -n "$PY" ] || fail "python3 not found"
pyexe=$("$PY" -c 'import sys; print(sys.executable)')
stdlib=$("$pyexe" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
[ -d "$stdlib" ] || fail "no stdlib dir at $stdlib"

step "packing $stdlib (no site/dist-packages, __pycache__, test dirs)"
tar -C "$stdlib" --format=posix -cf "$WORK/stdlib.tar" \
  --exclude=site-packages --exclude=dist-packages --exclude=__pycache__ \
  --exclude=test --exclude=tests --exclude=idle_test --exclude='config-3*' --exclude=EXTERNALLY-MANAGED .
nfiles=$(tar -tf "$WORK/stdlib.tar" | grep -vc '/$')
step "$nfiles files, $(($(stat -c %s "$WORK/stdlib.tar") / 1048576)) MiB"
[ "$nfiles" -gt 300 ] || fail "only $nfiles files packed from $stdlib"
mkdir "$WORK/ref"
tar -C "$WORK/ref" -xf "$WORK/stdlib.tar"

cat >"$WORK/imp.py" <<'PY'
# usage: imp.py MOUNTED_STDLIB ORIG_STDLIB DBFILE RUN
import sys
mnt, orig, dbfile, run = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
preloaded = set(sys.modules)
sys.path[:0] = [mnt, mnt + "/lib-dynload"]

import importlib, importlib.util, os
pure = ["json", "csv", "email.parser", "http.client", "argparse", "logging", "dataclasses",
        "pathlib", "textwrap", "difflib", "unittest", "xml.dom.minidom", "zipfile", "tarfile",
        "configparser", "fractions", "statistics", "_pydecimal", "tomllib", "asyncio", "string",
        "shutil", "tempfile", "subprocess"]
mods = {n: importlib.import_module(n) for n in pure}
bad = [n for n, m in mods.items() if not getattr(m, "__file__", "").startswith(mnt + "/")]
assert not bad, "imported from outside the mount: %s" % {n: getattr(mods[n], "__file__", None) for n in bad}

# Nothing imported after startup may come from the interpreter's own stdlib.
stray = sorted(n for n, m in list(sys.modules.items())
               if n not in preloaded and getattr(m, "__file__", None)
               and not m.__file__.startswith(mnt + "/"))
assert not stray, "loaded from outside the mount: %s" % {n: sys.modules[n].__file__ for n in stray}

# Use them a little: wrong bytes in a module would show up here or as a SyntaxError above.
import json, csv, io, difflib, zipfile, textwrap, fractions, _pydecimal, email.parser
assert json.loads(json.dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}
assert list(csv.reader(io.StringIO('x,"y,z"\n'))) == [["x", "y,z"]]
assert difflib.SequenceMatcher(None, "abcd", "abxd").ratio() == 0.75
assert fractions.Fraction(1, 3) + fractions.Fraction(1, 6) == fractions.Fraction(1, 2)
assert str(_pydecimal.Decimal("1.1") + _pydecimal.Decimal("2.2")) == "3.3"
assert email.parser.Parser().parsestr("Subject: hi\n\nbody").get("Subject") == "hi"
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("t.txt", textwrap.dedent("   x\n   y\n"))
assert zipfile.ZipFile(buf).read("t.txt") == b"x\ny\n"

# C extension modules from the mount's lib-dynload (dlopen mmaps them from the FUSE file system).
exts = [n for n, m in sys.modules.items() if getattr(m, "__file__", "").endswith(".so")]

# Python wrote its bytecode cache into the mount.
pyc = importlib.util.cache_from_source(mods["json"].__file__)
assert os.path.exists(pyc), "no %s: Python could not write its .pyc into the mount" % pyc

# An SQLite database on the mount: one more transaction batch per run.
try:
    import sqlite3
except ImportError as e:
    sqlite3 = None
    print("note: no sqlite3 module (%s)" % e)
if sqlite3:
    db = sqlite3.connect(dbfile)
    db.execute("create table if not exists t (run integer, i integer, s text)")
    for batch in range(10):
        with db:
            db.executemany("insert into t values (?, ?, ?)",
                           [(run, batch * 100 + i, "row %d-%d " % (run, i) * 5) for i in range(100)])
    got = db.execute("select run, count(*) from t group by run order by run").fetchall()
    assert got == [(r, 1000) for r in range(1, run + 1)], "rows per run: %s" % got
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    db.close()
print("ok: %d modules from the mount (%d C extensions: %s), pyc %s" %
      (len([m for m in sys.modules.values() if getattr(m, "__file__", "").startswith(mnt)]),
       len(exts), " ".join(sorted(exts)), pyc))
PY

rfs_format ws
rfs_mount ws
mp=$(rfs_mp ws)
mkdir "$mp/stdlib" "$mp/db"
step "extracting into the mount"
tar -C "$mp/stdlib" -xf "$WORK/stdlib.tar" || fail "tar -x into the mount failed"

# manifest DIR: one line per entry (without __pycache__): path type mode size mtime-ns link-target.
# Directories: type and mode only (their size is file-system specific; their mtime changes when
# Python adds __pycache__).
manifest() {
  (cd "$1" && find . -name __pycache__ -prune -o -printf '%p %y %m %s %T@ %l\n' |
     awk '$2 == "d" { $4 = "-"; $5 = "-" } { print }' | sort)
}
compare_tree() {  # WHEN
  diff -r -x __pycache__ "$WORK/ref" "$mp/stdlib" >"$WORK/diff.out" 2>&1 \
    || { head -n 40 "$WORK/diff.out" >&2; fail "diff -r ref vs mount $1"; }
  manifest "$WORK/ref" >"$WORK/manifest.ref"
  manifest "$mp/stdlib" >"$WORK/manifest.mnt"
  diff -u "$WORK/manifest.ref" "$WORK/manifest.mnt" >"$WORK/diff.out" \
    || { head -n 40 "$WORK/diff.out" >&2; fail "metadata (type/mode/size/mtime/link) differs $1"; }
  step "ok: $(wc -l <"$WORK/manifest.mnt") entries identical to the reference $1"
}
run_imports() {  # RUN WHEN
  local out="$WORK/imports.$1.out"
  (cd / && "$pyexe" -I -S -X frozen_modules=off "$WORK/imp.py" "$mp/stdlib" "$stdlib" "$mp/db/test.sqlite" "$1") \
    >"$out" 2>&1 || { cat "$out" >&2; fail "importing from the mount failed $2"; }
  sed 's/^/    | /' "$out" >&2
}
all_sums() { (cd "$mp" && find . -type f ! -name 'test.sqlite-*' -print0 | sort -z | xargs -0 sha256sum); }

compare_tree "after tar -x"
run_imports 1 "(first run, writes .pyc)"
compare_tree "after the first import run"
npyc=$(find "$mp/stdlib" -name '*.pyc' | wc -l)
[ "$npyc" -gt 20 ] || fail "only $npyc .pyc files written into the mount"
all_sums >"$WORK/sums.1"

rfs_remount_empty ws
compare_tree "after a remount with an empty cache"
(cd "$mp" && sha256sum -c --quiet "$WORK/sums.1") || fail "files (incl. $npyc .pyc and the SQLite db) differ after a remount with an empty cache"
run_imports 2 "after a remount with an empty cache"
all_sums >"$WORK/sums.2"
# Only the database may have changed; a rewritten or new .pyc means Python found the cached
# source mtime/size no longer matching, i.e. the file system did not keep them.
diff <(grep -v ' ./db/' "$WORK/sums.1") <(grep -v ' ./db/' "$WORK/sums.2") >"$WORK/diff.out" \
  || { head -n 20 "$WORK/diff.out" >&2; fail "the second import run rewrote or added .pyc files"; }
compare_tree "after the second import run"
rfs_umount ws
