#!/usr/bin/env bash
# Score every entry of the zoo and write the numbers into their cards: the synthetic test tables
# for each task (first LIMIT test images, 2/5/10 steps, with the classical baseline and the
# degraded input on the same images), the real-scan check of every entry on the Si(001):H
# reference (restore: do no harm; sr2/sr4: every k-th line super-resolved back to the full scan)
# and, for SR, the KID table on that real scan (`python -m evaluation experimental`).
#
#   bash scripts/evaluate_zoo.sh [TASK ...]          # default: restore sr2 sr4
#
# Environment: DATA (datasets, default ~/.cache/stm-zoo/data/<task>), ZOO (default zoo; several
# folders separated by ':' as in STM_ZOO_DIR, e.g. zoo:$HOME/.cache/stm-zoo/large),
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
REFERENCE=../shared/data/si001h-reference/brockley_23_2_forward.npy
[ -f "$REFERENCE" ] || exit 0
for task in "${TASKS[@]}"; do
  IFS=: read -ra FOLDERS <<< "$ZOO"
  for entry in $(for folder in "${FOLDERS[@]}"; do echo "$folder/$task"/*-*; done); do
    [ -f "$entry/model.safetensors" ] || continue
    name=$(basename "$entry")
    STM_ZOO_DIR="$ZOO" python -m evaluation reference --task "$task" --family "${name%-*}" \
      --size "${name##*-}" --steps 2 5 10 --update-card --zoo "$ZOO" \
      --figure "$OUT/reference_$task-$name.png"
  done
  if [ "$task" != restore ]; then  # Tables XII-XIII on the real scan: every k-th line vs all
    python -m evaluation reference --task "$task" --write-real-set "$OUT/real_$task"
    STM_ZOO_DIR="$ZOO" python -m evaluation experimental --task "$task" --zoo "$ZOO" \
      --degraded "$OUT/real_$task/low" --pristine "$OUT/real_$task/full" --steps 2 5 10 \
      --out "$OUT/$task" --update-cards
  fi
done
