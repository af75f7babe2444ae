#!/usr/bin/env bash
# Train (or continue) the six small zoo entries on this CPU with the CPU recipe
# (`training/configs.py`, presets `<task>/<family>-small@cpu`), one after the other.
#
#   bash scripts/train_small_zoo.sh [ENTRY ...]      # default: all six, restore/fm-small first
#
# Environment: DATA (datasets, default ~/.cache/stm-zoo/data/<task>, built with
# `python -m training data --task <task> --simulate 54 --out ...`), RUNS (resumable state, default
# ~/.cache/stm-zoo/runs), ZOO (output, default zoo), MINUTES_<task>_<family> to override a
# preset's wall-clock budget (e.g. MINUTES_restore_fm=120 to train longer; a resumed run whose
# budget grows continues with the cosine stretched over the new budget).
#
# Each run resumes from $RUNS/<task>/<family>-small when a checkpoint is there. A fresh run
# warm-starts from the committed weights: its own entry in $ZOO when that exists and was trained
# with the same output parametrisation, else restore/fm-small (sr2, sr4 and DDIM share its
# network shape). Interrupt with Ctrl-C / SIGTERM: the step in progress finishes and is saved.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-$HOME/.cache/stm-zoo/data}
RUNS=${RUNS:-$HOME/.cache/stm-zoo/runs}
ZOO=${ZOO:-zoo}
ENTRIES=("$@")
if [ ${#ENTRIES[@]} -eq 0 ]; then
  ENTRIES=(restore/fm sr2/fm sr4/fm restore/ddim sr2/ddim sr4/ddim)
fi

same_prediction() {  # does the committed entry $1 use the preset's output parametrisation?
  python - "$1" "$2" <<'EOF'
import json, sys
from training.configs import preset
config = json.load(open(sys.argv[1] + "/config.json"))
sys.exit(0 if config.get("prediction", "native") == preset(sys.argv[2]).prediction else 1)
EOF
}

for entry in "${ENTRIES[@]}"; do
  task=${entry%/*}
  family=${entry#*/}
  name="$task/$family-small"
  run="$RUNS/$name"
  args=(--preset "$name@cpu" --data "$DATA/$task" --out "$ZOO" --run-dir "$run")
  minutes_var="MINUTES_${task}_${family//-/_}"
  if [ -n "${!minutes_var:-}" ]; then
    args+=(--time-budget-min "${!minutes_var}")
  fi
  if [ ! -f "$run/training_state.pt" ]; then
    if [ -f "$ZOO/$name/model.safetensors" ] && same_prediction "$ZOO/$name" "$name@cpu"; then
      args+=(--init-from "$ZOO/$name")
    elif [ "$name" != "restore/fm-small" ] && [ -f "$ZOO/restore/fm-small/model.safetensors" ]; then
      args+=(--init-from "$ZOO/restore/fm-small")
    fi
  fi
  echo "== $name: python -m training train ${args[*]}"
  python -m training train "${args[@]}"
done
