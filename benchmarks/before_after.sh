#!/usr/bin/env bash
# rnnkit before and after a change, on peers.py's cells, the two trees taking turns:
#   bash benchmarks/before_after.sh BEFORE_TREE AFTER_TREE OUT_DIR [ROUNDS] [CONFIGS]
# BEFORE_TREE / AFTER_TREE: checkouts (e.g. `git worktree add --detach ../before REV`).
# Then: python benchmarks/before_after_report.py OUT_DIR
set -eu
before=$1 after=$2 out=$3 rounds=${4:-3} configs=${5:-small,medium,large,stream}
mkdir -p "$out"
for r in $(seq "$rounds"); do
  for side in before after; do
    tree=$before; [ "$side" = after ] && tree=$after
    (cd "$tree" && PYTHONPATH="$tree" python benchmarks/peers.py --frameworks rnnkit \
        --rounds 1 --configs "$configs" --out "$out/${side}_$r.json" > "$out/${side}_$r.log" 2>&1)
  done
done
