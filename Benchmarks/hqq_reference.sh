#!/usr/bin/env bash
# Runs the hqq library's own quantizer (mobiusml/hqq, Quantizer.quantize → legacy proximal
# solver, fp32 on CPU) on SmolLM2 linears and writes its scale/zero/W_q to a safetensors file,
# then runs the Swift test that compares HQQSolver with it:
#   Benchmarks/hqq_reference.sh [OUT.safetensors] [LAYERS]      (defaults: /tmp/hqq_reference.safetensors, 0,15)
# The venv lives at $HQQ_VENV (default /root/.cache/qdist/hqq-venv) and is made once:
# the CPU torch wheel by file path from /opt/wheels (PyPI's torch is the CUDA build), then
# hqq 0.2.8.post1 with DISABLE_CUDA=1 (its setup.py otherwise tries to build CUDA kernels) and
# --no-deps: hqq.core.quantize needs only torch, numpy and termcolor, not transformers/accelerate.
# MODEL points at the float checkpoint (default /root/.cache/qdist/smollm2-135m-instruct).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${HQQ_VENV:-/root/.cache/qdist/hqq-venv}
out=${1:-/tmp/hqq_reference.safetensors}
layers=${2:-0,15}
model=${MODEL:-/root/.cache/qdist/smollm2-135m-instruct}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import hqq.core.quantize" 2>/dev/null; then
  python3 -m venv "$venv"
  wheel=$(ls /opt/wheels/torch-*+cpu-*.whl | head -n 1)
  "$venv/bin/pip" install --quiet "$wheel"
  DISABLE_CUDA=1 "$venv/bin/pip" install --quiet --no-deps hqq==0.2.8.post1
  "$venv/bin/pip" install --quiet numpy safetensors termcolor
fi
"$venv/bin/python" Benchmarks/hqq_reference.py --model "$model" --layers "$layers" --output "$out"
QDIST_HQQ_REFERENCE="$out" swift test --filter HQQLibraryAgreementTests 2>&1 | grep -E "HQQ library|error|passed|failed|skipped" || true
