#!/usr/bin/env bash
# The current Python stack that qdist's outputs must load in (issue 23's load test): a venv
# outside the repository, ~/.cache/qdist/loadtest-venv, with the CPU torch wheel from pip's
# configured find-links folder and pinned transformers, compressed-tensors, bitsandbytes and peft — the
# newest releases when pinned; bumping them is a deliberate commit. Idempotent (~1 s when
# ready); prints the venv's python on its last line.
set -euo pipefail
venv=${QDIST_LOADTEST_VENV:-$HOME/.cache/qdist/loadtest-venv}
pins=(transformers==5.23.0 compressed-tensors==0.20.1 peft==0.21.2 bitsandbytes==0.50.2 safetensors numpy)
stamp="$venv/.qdist-pins"
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${pins[*]}" ]; then
  echo "$venv/bin/python"; exit 0
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
# PyPI's torch is the CUDA build; the CPU wheel sits in pip's find-links folder.
links=$(pip config get global.find-links 2>/dev/null || true)
wheel=$(ls "${links:-/opt/wheels}"/torch-*cpu*.whl 2>/dev/null | sort | tail -n 1 || true)
if [ -z "$wheel" ]; then
  echo "setup-load-test: no CPU torch wheel in pip's find-links folder (${links:-unset}); PyPI's torch is the CUDA build" >&2
  exit 1
fi
"$venv/bin/pip" install -q --disable-pip-version-check "$wheel"
"$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
echo "${pins[*]}" > "$stamp"
echo "load-test venv: $("$venv/bin/python" -c 'import torch, transformers, compressed_tensors, peft, bitsandbytes; print("torch", torch.__version__, "transformers", transformers.__version__, "compressed-tensors", compressed_tensors.__version__, "peft", peft.__version__, "bitsandbytes", bitsandbytes.__version__)')" >&2
echo "$venv/bin/python"
