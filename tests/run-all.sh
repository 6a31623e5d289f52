#!/usr/bin/env bash
# Every Prunelab test: Rust unit and integration tests (CPU and wgpu/lavapipe; the lab's state
# crate natively), the Python tests (the Kaldi fbank reference, the bootstrap against NumPy, the
# TensorBoard scalars, the layering of the sources, the hostile-input replay, pruned exports in PyTorch and ONNX Runtime
# against `prunelab logits`), a smoke run of the fuzzer on every file loader (3 s each; the
# campaign is `tests/fuzz/run.sh all SECONDS`), the wasm build of the app, and the lab in
# headless Chromium.
#
# Each stage is timed; the table of stages and seconds is printed at the end, also when a stage
# fails, so every CI log says where its time went. `.ci/run` passes the set-up's seconds in
# PRUNELAB_SETUP_SECONDS so that they appear in the same table.
#
# The wasm build shares no compiled crate with the native one (another target, the release
# profile), so it runs in the background while the native tests, the Python tests and the fuzzer
# run, which leave a core idle much of the time; its output goes to target/wasm-build.log and is
# shown if it fails.
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
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
print_stages() {
  local status=$? total=$(( $(date +%s) - started )) i
  # A stage failed while the wasm build was still running: stop it (trunk, cargo, rustc).
  if [ -n "${wasm_build:-}" ]; then kill_tree "$wasm_build"; fi
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

target_dir="${CARGO_TARGET_DIR:-target}"
python=python3
if [ -x .venv/bin/python3 ]; then python=.venv/bin/python3; fi  # made by .ci/setup where pip needs one
run_python_tests() {
  PRUNELAB_BIN="$target_dir/debug/prunelab" "$python" -m pytest tests/python -q -rA -p no:cacheprovider
}
wasm_log="$target_dir/wasm-build.log"
wasm_seconds="$target_dir/wasm-build.seconds"
# The wasm build, its seconds written down whether it succeeds or not; its status is trunk's.
build_app() {
  local t0 status=0
  t0=$(date +%s)
  { trunk build --quiet && ls -l dist/*.wasm; } || status=$?
  echo $(( $(date +%s) - t0 )) > "$wasm_seconds"
  return $status
}
# Waits for the background wasm build and shows its output.
wait_for_app() {
  local status=0
  wait "$wasm_build" || status=$?
  wasm_build=
  cat "$wasm_log"
  return $status
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

# A clean clone's build and tests take about 7 GiB (native and wasm targets, the tests' scratch
# files): with less free, stop now with a clear message rather than at "No space left on device"
# a quarter of an hour into the build (as one CI run did, 2026-12-06, on a nearly full disk).
mkdir -p "$target_dir"
free_gib=$(( $(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }') / 1048576 ))
printf '== disk: %s GiB free where the build goes (%s)\n' "$free_gib" "$target_dir"
if [ "$free_gib" -lt 8 ]; then
  echo "error: the build and tests need about 8 GiB free under $target_dir; free some space first" >&2
  exit 1
fi

stage "cargo build (engine, CLI, the lab's state, the fuzzer)" cargo build --quiet
stage "compile the Rust tests" cargo test --quiet --no-run
rm -f "$wasm_seconds"
build_app > "$wasm_log" 2>&1 &
wasm_build=$!
stage "run the Rust tests (the wasm build beside them)" cargo test --quiet
stage "Python: fbank, bootstrap, wer against jiwer, hostile-input replay, TensorBoard, layering, PyTorch and ONNX exports" run_python_tests
stage "fuzz every file loader for 3 s (tests/fuzz/run.sh all 3)" bash tests/fuzz/run.sh all 3
stage "wait for the wasm build (trunk)" wait_for_app
stage_names+=("  (the wasm build itself, begun after compiling the Rust tests)")
stage_seconds+=("$(cat "$wasm_seconds")")
stage "lab page in headless Chromium (WebGPU via SwiftShader, and the CPU fallback)" browser_tests
