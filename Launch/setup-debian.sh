#!/usr/bin/env bash
# Installs what qdist needs on Debian 12 (run as root): Open MPI, OpenBLAS with LAPACKE, and a
# Python venv (.venv at the repository root) with the reference packages the tests compare
# against. Idempotent; takes ~15 s when the packages are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=(libopenmpi-dev openmpi-bin libopenblas-dev liblapacke-dev pkg-config python3-venv)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python3 ]; then
  python3 -m venv .venv
fi
.venv/bin/python3 -c 'import safetensors, numpy, gguf, tokenizers' 2>/dev/null || \
  .venv/bin/pip install -q --disable-pip-version-check safetensors numpy gguf tokenizers
# The Python stack the load test checks outputs against (transformers, compressed-tensors, peft).
bash Launch/setup-load-test.sh >/dev/null
echo "setup: Open MPI $(mpirun --version 2>/dev/null | head -1 | awk '{print $NF}'), OpenBLAS $(dpkg -s libopenblas0-pthread 2>/dev/null | awk '/^Version/{print $2}'), venv .venv ready" >&2
