#!/usr/bin/env bash
# The experiment of issue "Training": SFT warm start, then F-GRPO, GRPO and the decoupled
# baseline from the same SFT checkpoint with the same budget (steps x prompts x G), then all
# methods + baselines on the same seeded test users under the pool protocol.
#
#   SFT_STEPS=24 RL_STEPS=40 USERS=300 NAME=rl40 bash benchmarks/method_comparison.sh runs/cmp40
#
# RL runs go two at a time with one torch thread each (faster than one at a time with two
# threads on a 2-core machine). Outputs: OUT/{sft,fgrpo,grpo,decoupled}/ (metrics.jsonl,
# final/), benchmarks/results/method_comparison_$NAME.{json,md}, $NAME_training_curves.png,
# $NAME_training_cost.{json,md}. An existing OUT/sft (or a symlink to another run's) is reused.
set -euo pipefail
OUT=${1:-runs/cmp}
SFT_STEPS=${SFT_STEPS:-40}
RL_STEPS=${RL_STEPS:-10}
USERS=${USERS:-300}
PRESET=${PRESET:-cpu}
NAME=${NAME:-rl$RL_STEPS}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
train() {  # method out threads [extra...]
  local m=$1 dir=$2 th=$3; shift 3
  recgen --log-level INFO train --method "$m" --preset "$PRESET" --out-dir "$dir" --threads "$th" \
    --eval-users 0 "$@" > "$dir.log" 2>&1
}
[ -f "$OUT/sft/final/recgen.json" ] || train sft "$OUT/sft" 2 --steps "$SFT_STEPS"
INIT="$OUT/sft/final"
[ -f "$OUT/fgrpo/final/recgen.json" ] || train fgrpo "$OUT/fgrpo" 1 --steps "$RL_STEPS" --init-from "$INIT" &
[ -f "$OUT/grpo/final/recgen.json" ] || train grpo "$OUT/grpo" 1 --steps "$RL_STEPS" --init-from "$INIT" &
wait
for m in fgrpo grpo; do [ -f "$OUT/$m/final/recgen.json" ] || { echo "$m failed: see $OUT/$m.log" >&2; exit 1; }; done
[ -f "$OUT/decoupled/final/recgen.json" ] || train decoupled "$OUT/decoupled" 2 --steps "$RL_STEPS" --init-from "$INIT"
python benchmarks/pool_protocol.py --users "$USERS" --name "method_comparison_$NAME" --reference fgrpo \
  --methods retriever popularity zero-shot sft="$INIT" grpo="$OUT/grpo/final" \
  decoupled="$OUT/decoupled/final" fgrpo="$OUT/fgrpo/final"
python benchmarks/training_curves.py "$OUT" --out benchmarks/results --prefix "${NAME}_"
