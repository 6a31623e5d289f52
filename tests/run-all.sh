#!/usr/bin/env bash
# Every Prunelab test: Rust unit and integration tests (CPU and wgpu/lavapipe; the lab's state
# crate natively), the Python tests (the Kaldi fbank reference, the bootstrap against NumPy, the
# TensorBoard scalars, the layering of the sources, pruned exports in PyTorch and ONNX Runtime
# against `prunelab logits`), 30 s of fuzzing per file loader, the wasm build of the app, and the
# lab in headless Chromium.
#
# Each stage is timed; the table of stages and seconds is printed at the end, also when a stage
# fails, so every CI log says where its time went. `.ci/run` passes the set-up's seconds in
# PRUNELAB_SETUP_SECONDS so that they appear in the same table.
set -euo pipefail
cd "$(dirname "$0")/.."
# lavapipe's Vulkan driver, so wgpu tests run without a GPU.
lvp=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f "$lvp" ]; then export VK_ICD_FILENAMES=$lvp; fi

# wgpu's Vulkan loader complains on every start when this is unset; give it a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then export XDG_RUNTIME_DIR=$(mktemp -d); fi

stage_names=()
stage_seconds=()
started=$(date +%s)
if [ -n "${PRUNELAB_SETUP_SECONDS:-}" ]; then
  stage_names+=("setup (.ci/setup)")
  stage_seconds+=("$PRUNELAB_SETUP_SECONDS")
fi
print_stages() {
  local status=$? total=$(( $(date +%s) - started )) i
  printf '\n== where the time went\n'
  printf '%-62s %7s\n' stage seconds
  for i in "${!stage_names[@]}"; do printf '%-62s %7s\n' "${stage_names[$i]}" "${stage_seconds[$i]}"; done
  browser_rows | while IFS=$'\t' read -r name seconds; do printf '%-62s %7s\n' "$name" "$seconds"; done
  printf '%-62s %7s\n' "tests/run-all.sh in all" "$total"
  [ "$status" -eq 0 ] || printf '(stopped by a failure: status %s)\n' "$status"
}
trap print_stages EXIT
# stage NAME COMMAND...: runs COMMAND, printing NAME first and recording its seconds.
stage() {
  local name=$1 t0
  shift
  printf '\n== %s\n' "$name"
  t0=$(date +%s)
  stage_names+=("$name")
  stage_seconds+=("…")
  "$@"
  stage_seconds[${#stage_seconds[@]}-1]=$(( $(date +%s) - t0 ))
}

python=python3
if [ -x .venv/bin/python3 ]; then python=.venv/bin/python3; fi  # made by .ci/setup where pip needs one
run_python_tests() {
  PRUNELAB_BIN="${CARGO_TARGET_DIR:-target}/debug/prunelab" "$python" -m pytest tests/python -q -rA -p no:cacheprovider
}
build_app() {
  trunk build --quiet
  ls -l dist/*.wasm
}
browser_timings=$(mktemp)
browser_tests() {
  (cd tests/browser && npm ci --silent --no-audit --no-fund \
    && node --test --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$browser_timings")
}
# One row per browser test, from the TAP report's top-level results and their duration_ms.
browser_rows() {
  awk '/^(not )?ok [0-9]+ - / { sub(/^(not )?ok [0-9]+ - /, ""); name = $0; next }
       /^  duration_ms: / && name != "" { printf "  browser: %s\t%d\n", substr(name, 1, 50), $2 / 1000 + 0.5; name = "" }' "$browser_timings"
}

stage "cargo build (engine, CLI, the lab's state)" cargo build --quiet
stage "cargo test (engine, CLI, the lab's state)" cargo test --quiet
stage "Python: fbank, bootstrap, TensorBoard, layering, PyTorch and ONNX exports" run_python_tests
stage "fuzz every file loader for 30 s (tests/fuzz/run.sh)" bash tests/fuzz/run.sh all 30
stage "app builds for wasm32 (trunk)" build_app
stage "lab page in headless Chromium (WebGPU via SwiftShader, and the CPU fallback)" browser_tests
