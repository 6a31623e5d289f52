#!/usr/bin/env bash
# Issue 16's training series, one run after another on the CPU backend (4000 steps, 2 shards).
# Re-running this script skips finished runs and resumes an interrupted one (`train --resume`),
# so it can be restarted in every session until it is done:
#
#   PRUNELAB=target/release/prunelab nohup bash docs/runs/issue16.sh runs/s14 > runs/s14/queue.log 2>&1 &
#   PRUNELAB=... EVAL_CORPUS=... PART=regime KEEP=docs/runs/regime nohup bash docs/runs/issue16.sh runs/s20 ...
#
# 1. The comparison at the default budget: dense, adaptive dropout (α 2.5e-6, ramp 0.6, τ 0.4),
#    L0 (target 0.5, distilled from the dense run of its seed) and magnitude (budget 0.5), seeds
#    0 and 1. Then: prunelab compare DIR/{dense,ad,l0,mag}-s{0,1} --eval-corpus eval-corpus
# 2. The regime study: the same four methods on a quarter of the training split
#    (--train-share 0.25, 126 of 504 recordings), where the dense model should overfit, with an
#    evaluation on the evaluation set's 1,008 dev utterances every 250 steps for the
#    train-loss-against-dev-WER curve ($EVAL_CORPUS, default eval-corpus: `prunelab corpus eval-set`).
#
# PART=regime runs only part 2. KEEP=DIR keeps every finished run beyond the machine it ran on:
# its slim checkpoint (`prunelab slim`), metrics, options and summary go to DIR/<run>, and a run
# found there is copied back instead of trained again (each run takes about an hour on 2 cores,
# the series more than one session, and a session's machine may not outlive it).
set -u
out=${1:?usage: issue16.sh OUTPUT_DIR}
P=${PRUNELAB:-target/release/prunelab}
eval_corpus=${EVAL_CORPUS:-eval-corpus}
mkdir -p "$out"
keep=${KEEP:-}
part=${PART:-all}
keep_run() { # name: a finished run's slim copy into $keep
  [ -n "$keep" ] || return 0
  local from="$out/$1" to="$keep/$1"
  mkdir -p "$to"
  "$P" slim "$from/checkpoint.plc" --out "$to/checkpoint.plc" &&
    cp "$from/metrics.jsonl" "$from/run.json" "$from/summary.json" "$to/"
}
run() { # name, train options...
  local name=$1; shift
  if [ ! -d "$out/$name" ] && [ -n "$keep" ] && [ -f "$keep/$name/summary.json" ]; then
    cp -r "$keep/$name" "$out/$name"; echo "$name restored from $keep"
  fi
  if [ -f "$out/$name/summary.json" ]; then echo "$name done"; return; fi
  if [ -f "$out/$name/run.json" ]; then
    echo "$(date +%T) resume $name"; "$P" train --resume "$out/$name" >> "$out/$name.log" 2>&1
  else
    echo "$(date +%T) start $name"; "$P" train "$@" --out "$out/$name" > "$out/$name.log" 2>&1
  fi
  local status=$?
  echo "$(date +%T) $name exit $status"
  if [ $status = 0 ]; then keep_run "$name"; fi
}
methods() { # prefix, extra options...
  local prefix=$1 seed=$2; shift 2
  run "${prefix}ad-s$seed" --seed "$seed" --device cpu "$@" --method adaptive-dropout --strength 2.5e-6 --target-ramp 0.6 --temperature 0.4
  run "${prefix}l0-s$seed" --seed "$seed" --device cpu "$@" --method l0 --target-sparsity 0.5 --teacher "$out/${prefix}dense-s$seed/checkpoint.plc"
  run "${prefix}mag-s$seed" --seed "$seed" --device cpu "$@" --method magnitude --budget 0.5
}
if [ "$part" != regime ]; then
  for seed in 0 1; do run "dense-s$seed" --seed "$seed" --device cpu; done
  for seed in 0 1; do methods "" "$seed"; done
fi
quarter=(--train-share 0.25 --eval-every 250 --eval-corpus "$eval_corpus")
for seed in 0 1; do run "quarter-dense-s$seed" --seed "$seed" --device cpu "${quarter[@]}"; done
for seed in 0 1; do methods "quarter-" "$seed" "${quarter[@]}"; done
