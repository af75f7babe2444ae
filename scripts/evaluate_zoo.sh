#!/usr/bin/env bash
# Score every entry of the zoo and write the numbers into their cards: the synthetic test tables
# for each task (first LIMIT test images, 2/5/10 steps, with the classical baseline and the
# degraded input on the same images) and the do-no-harm check on the real reference scan.
#
#   bash scripts/evaluate_zoo.sh [TASK ...]          # default: restore sr2 sr4
#
# Environment: DATA (datasets, default ~/.cache/stm-zoo/data/<task>), ZOO (default zoo),
# OUT (tables, plots, example grids; default results), LIMIT (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-$HOME/.cache/stm-zoo/data}
ZOO=${ZOO:-zoo}
OUT=${OUT:-results}
LIMIT=${LIMIT:-100}
TASKS=("$@")
if [ ${#TASKS[@]} -eq 0 ]; then
  TASKS=(restore sr2 sr4)
fi
for task in "${TASKS[@]}"; do
  python -m evaluation synthetic --zoo "$ZOO" --data "$DATA/$task" --task "$task" \
    --steps 2 5 10 --limit "$LIMIT" --no-targeted --out "$OUT/$task" --update-cards
done
for entry in "$ZOO"/restore/*-small; do
  family=$(basename "$entry")
  family=${family%-small}
  if [ -f "$entry/model.safetensors" ] && [ -f ../shared/data/si001h-reference/brockley_23_2_forward.npy ]; then
    STM_ZOO_DIR="$ZOO" python -m evaluation reference --family "$family" --size small \
      --steps 2 5 10 --update-card --zoo "$ZOO" --figure "$OUT/reference_$family-small.png"
  fi
done
