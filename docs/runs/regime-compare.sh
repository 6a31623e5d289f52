#!/usr/bin/env bash
# The regime study's two comparisons, once all eight quarter-data runs of `issue16.sh` are done:
# every run at its own cut, and every gated run cut to half the dense parameters (`--budget 0.5`,
# the size the L0 target and the magnitude budget aim at). Reports and charts go to
# OUT/own and OUT/half; docs/results.md quotes them.
#
#   PRUNELAB=target/release/prunelab EVAL_CORPUS=eval-corpus bash docs/runs/regime-compare.sh RUNS OUT
#
# RUNS holds the run directories (the script's output, or docs/runs/regime, whose slim
# checkpoints compare reads as it reads full ones). Nothing else should run on the machine
# while it times the speed-ups.
set -euo pipefail
runs=${1:?usage: regime-compare.sh RUNS OUT}
out=${2:?usage: regime-compare.sh RUNS OUT}
P=${PRUNELAB:-target/release/prunelab}
eval_corpus=${EVAL_CORPUS:-eval-corpus}
dirs=()
for seed in 0 1; do
  for method in dense ad l0 mag; do
    dir="$runs/quarter-$method-s$seed"
    [ -f "$dir/checkpoint.plc" ] || { echo "$dir: no checkpoint.plc; is the run finished?" >&2; exit 1; }
    dirs+=("$dir")
  done
done
# Both time 15 pairs of passes per run instead of 3: with 3, the same magnitude model (cut in
# training, so identical in both comparisons) measured 1.54× in one and 1.34× in the other.
"$P" compare "${dirs[@]}" --eval-corpus "$eval_corpus" --repeats 15 --out "$out/own"
# The WER-against-parameters curves come from the uncut gated runs whatever the budget, so the
# first comparison has drawn them already; the second skips them (a third of its time).
"$P" compare "${dirs[@]}" --eval-corpus "$eval_corpus" --budget 0.5 --curve-points 0 --repeats 15 --out "$out/half"
