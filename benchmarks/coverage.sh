#!/usr/bin/env bash
# The issue-12 report grid for one ladder rung (default: the shipped one): both bundled databases,
# budgets 0.01, 0.002 and 0.05, seeds 0-4; the rung scored by SAGE, HGT and HAN, the equal-bytes
# baselines by SAGE. One ladder invocation at a time (the 2 cores are shared by nothing else); each
# finished row is appended with its commit to benchmarks/results/ladder-<database>.jsonl, and a
# rerun skips the rows this commit already has, so a later session completes an interrupted grid.
# Run it at a fixed commit (e.g. in `git worktree add /tmp/sweep HEAD`) so editing main beside it
# does not change the commit its rows record. Usage: benchmarks/coverage.sh [RUNG] [DATABASE:RATIO ...]
set -uo pipefail
cd "$(dirname "$0")/.."
export T2G_DATA_DIR="${T2G_DATA_DIR:-$PWD/data}" DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PY:-.venv/bin/python}"
RUNG="${1:-28}"
shift || true
CELLS=("$@")
[ ${#CELLS[@]} -gt 0 ] || CELLS=(lahman:0.01 completejourney:0.01 completejourney:0.002 completejourney:0.05
                                 lahman:0.002 lahman:0.05)
for cell in "${CELLS[@]}"; do
  echo "=== $(date +%H:%M:%S) rung $RUNG, ${cell%%:*} @ ${cell##*:}"
  "$PY" -m benchmarks.ladder --database "${cell%%:*}" --ratio "${cell##*:}" --rungs "$RUNG" \
    --seeds 0,1,2,3,4 --models sage,hgt,han --baselines --rerun
done
echo "=== $(date +%H:%M:%S) done"
