#!/usr/bin/env bash
# Every C file git tracks is formatted by the tree's .clang-format (clang-format 14, Debian 12).
# Fails with the files to run `clang-format -i` on.
set -euo pipefail
cd "${ROAMFS_SRC:?set by ctest}"
command -v clang-format >/dev/null || { echo "clang-format missing (package clang-format; scripts/deps.sh installs it)"; exit 1; }
# other versions format some constructs differently: only Debian 12's 14 is the reference
clang-format --version | grep -q ' 14\.' || { echo "SKIP: $(clang-format --version) is not clang-format 14"; exit 77; }
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find fs sync backends cli tests -name '*.[ch]')
if [ "${#bad[@]}" -gt 0 ]; then
  echo "not formatted by .clang-format (run: clang-format -i ${bad[*]})"
  exit 1
fi
echo "all C files formatted"
