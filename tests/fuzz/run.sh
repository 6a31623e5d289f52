#!/usr/bin/env bash
# Fuzz Prunelab's loaders: tests/fuzz/run.sh TARGET|all SECONDS [SEED]
#
# Targets: checkpoint export archive saved trace pack flac wav librispeech hypothesis (`all`:
# each in turn, SECONDS each; `saved` is the run the lab keeps for a reload). A run mutates valid
# files made by the engine's writers and fails on a panic, an abort (a refused allocation above
# 1 GiB, or running out of the 4 GiB address space this script allows), or an input that runs
# longer than 20 s. Crashing inputs are written under
# target/fuzz/TARGET/; copy one into tests/fuzz/regressions/TARGET/ with a name that says
# what it broke, and the replay test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
targets=$1 seconds=$2 seed=${3:-0}
if [ "$targets" = all ]; then
  targets="checkpoint export archive saved trace pack flac wav librispeech hypothesis"
fi
# `--bin`, not `-p prunelab-fuzz`: selecting the package alone resolves the dependencies' features
# for it alone, which differ from the workspace's, and cargo then compiles burn and everything
# under it a second time (about 10 minutes on two cores). Among the default members the features
# are the workspace's, so after `cargo build` this builds nothing.
cargo build --quiet --bin prunelab-fuzz
fuzzer="${CARGO_TARGET_DIR:-target}/debug/prunelab-fuzz"
export PRUNELAB_FUZZ_OUT="${PRUNELAB_FUZZ_OUT:-${CARGO_TARGET_DIR:-target}/fuzz}"
failed=0
for target in $targets; do
  status=0
  (ulimit -v 4194304 && exec "$fuzzer" "$target" "$seconds" "$seed") || status=$?
  if [ "$status" -ne 0 ]; then
    failed=1
    if [ -f "$PRUNELAB_FUZZ_OUT/$target/current-input" ]; then
      echo "$target: ended with status $status; the input it was running is $PRUNELAB_FUZZ_OUT/$target/current-input" >&2
    fi
  fi
done
exit $failed
