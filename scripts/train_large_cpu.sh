#!/usr/bin/env bash
# Train (or continue) the large autoencoder entries on this CPU, restore first, then sr2 and sr4
# warm-started from it (presets `<task>/ae-large@cpu`: identity start, 2x stem, batch 16).
#
#   bash scripts/train_large_cpu.sh [TASK ...]          # default: restore sr2 sr4
#
# Environment: DATA (datasets, default ~/.cache/stm-zoo/data/<task>), RUNS (resumable state,
# default ~/.cache/stm-zoo/runs), OUT (default ~/.cache/stm-zoo/large: a published-layout folder
# outside git, too large for the bundled zoo; serve it with STM_ZOO_DIR=zoo:$OUT, publish it with
# `python -m stm_zoo publish --zoo $OUT`, commit its cards with `python -m stm_zoo zoo cards
# --from $OUT`), MINUTES_<task> to change a preset's wall-clock budget (a resumed run whose budget
# grows continues with the cosine stretched over the new budget). The other large families need
# a GPU: scripts/train_large_gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-$HOME/.cache/stm-zoo/data}
RUNS=${RUNS:-$HOME/.cache/stm-zoo/runs}
OUT=${OUT:-$HOME/.cache/stm-zoo/large}
TASKS=("$@")
if [ ${#TASKS[@]} -eq 0 ]; then
  TASKS=(restore sr2 sr4)
fi
for task in "${TASKS[@]}"; do
  name="$task/ae-large"
  args=(--preset "$name@cpu" --data "$DATA/$task" --out "$OUT" --run-dir "$RUNS/$name")
  minutes_var="MINUTES_${task}"
  if [ -n "${!minutes_var:-}" ]; then
    args+=(--time-budget-min "${!minutes_var}")
  fi
  if [ ! -f "$RUNS/$name/training_state.pt" ] && [ "$task" != restore ] \
    && [ -f "$OUT/restore/ae-large/model.safetensors" ]; then
    args+=(--init-from "$OUT/restore/ae-large")
  fi
  echo "== $name: python -m training train ${args[*]}"
  python -m training train "${args[@]}"
done
