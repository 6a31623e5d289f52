#!/usr/bin/env bash
# Every Prunelab test: Rust unit and integration tests (CPU and wgpu/lavapipe; the lab's state
# crate natively), the Python tests (the Kaldi fbank reference, the bootstrap against NumPy, the
# TensorBoard scalars, the layering of the sources, pruned exports in PyTorch and ONNX Runtime
# against `prunelab logits`), 30 s of fuzzing per file loader, the wasm build of the app, and the
# lab in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
# lavapipe's Vulkan driver, so wgpu tests run without a GPU.
lvp=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f "$lvp" ]; then export VK_ICD_FILENAMES=$lvp; fi

# wgpu's Vulkan loader complains on every start when this is unset; give it a private one.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then export XDG_RUNTIME_DIR=$(mktemp -d); fi

step() { printf '\n== %s\n' "$*"; }

step "cargo build (engine, CLI, the lab's state)"
cargo build --quiet
step "cargo test (engine, CLI, the lab's state)"
cargo test --quiet
step "Python: fbank against kaldi-native-fbank, bootstrap against NumPy, TensorBoard scalars, the layering of the sources, exports in PyTorch and ONNX Runtime"
python=python3
if [ -x .venv/bin/python3 ]; then python=.venv/bin/python3; fi  # made by .ci/setup where pip needs one
PRUNELAB_BIN="${CARGO_TARGET_DIR:-target}/debug/prunelab" "$python" -m pytest tests/python -q -rA -p no:cacheprovider
step "fuzz every file loader for 30 s (tests/fuzz/run.sh)"
bash tests/fuzz/run.sh all 30
step "app builds for wasm32 (trunk)"
trunk build --quiet
ls -l dist/*.wasm
step "lab page in headless Chromium (WebGPU via SwiftShader, and the CPU fallback)"
(cd tests/browser && npm ci --silent --no-audit --no-fund && node --test)
