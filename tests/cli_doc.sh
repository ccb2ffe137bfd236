#!/usr/bin/env bash
# docs/cli-reference.md must be what `roamfs help --all` prints (run scripts/gen-cli-doc.sh).
set -euo pipefail
src=${ROAMFS_SRC:?} bin=${ROAMFS:?}
expected=$(sed -n '/^```$/,/^```$/p' "$src/docs/cli-reference.md" | sed '1d;$d')
actual=$("$bin" help --all)
if [ "$expected" != "$actual" ]; then
  diff <(echo "$expected") <(echo "$actual") || true
  echo "docs/cli-reference.md is stale: run scripts/gen-cli-doc.sh" >&2
  exit 1
fi
for c in format mount umount status sync warmup fsck gc; do
  "$bin" "$c" --help | grep -q "usage: roamfs $c" || { echo "roamfs $c --help has no usage line" >&2; exit 1; }
done
echo "cli reference current"
