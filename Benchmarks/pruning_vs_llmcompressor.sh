#!/bin/bash
# Issue 24's comparison: qdist's pruning recipes against llm-compressor 0.14 on SmolLM2, the
# same calibration windows (python_random, seed 0, N × 512 from valid.txt) and the same eval
# (qdist eval, test.txt, 40 × 512). Prints one line per recipe: qdist ppl and seconds, then
# llm-compressor's (its ppl from qdist eval of its saved folder, or torch in-memory).
#
#   bash Benchmarks/pruning_vs_llmcompressor.sh [SAMPLES=32] [RECIPES...]
#
# Needs a release build (.build/release/qdist), SmolLM2 in ~/.cache/qdist (Launch/get-smollm2.sh)
# and, for the llm-compressor half, the venv described in Benchmarks/llmcompressor_reference.py
# (skipped with LLMC=0). Heavy (minutes per recipe on 2 cores): not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-32}; shift || true
recipes=("${@:-sparsegpt-50 sparsegpt-2of4 wanda-2of4 sparsegpt-2of4-rtn-w4a16 sparsegpt-2of4-gptq-w4a16 sparsegpt-2of4-w4a16}")
read -r -a recipes <<< "${recipes[*]}"
model=${MODEL:-$HOME/.cache/qdist/smollm2-135m-instruct}
out=${OUT:-/tmp/qdist-pruning-compare}
py=${LLMC_PYTHON:-$HOME/.cache/qdist/llmc-venv/bin/python}
bin=.build/release/qdist
mkdir -p "$out"
printf '%-28s %10s %9s %12s %9s\n' recipe qdist_ppl qdist_s llmc_ppl llmc_s
for r in "${recipes[@]}"; do
  t0=$(date +%s.%N)
  "$bin" quantize --config "Configs/quantize/smollm2-$r.yaml" --model "$model" --output "$out/qdist-$r" \
      --samples "$samples" --overwrite > "$out/qdist-$r.log" 2>&1
  t1=$(date +%s.%N)
  q=$("$bin" eval --model "$out/qdist-$r" --data ../shared/data/wikitext-2/test.txt --windows 40 --json \
      | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ppl"], 3))')
  l_ppl=-; l_s=-
  # The joint one-pass recipe has no llm-compressor counterpart (its SparseGPT does not quantize).
  if [ "${LLMC:-1}" = 1 ] && [ "$r" != sparsegpt-2of4-w4a16 ]; then
    line=$("$py" Benchmarks/llmcompressor_reference.py --recipe "$r" --samples "$samples" --out "$out/llmc-$r" \
           --qdist "$bin" --torch-eval 2>"$out/llmc-$r.log" | tail -n 1)
    l_ppl=$(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["ppl"], 3))')
    l_s=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  fi
  printf '%-28s %10s %9.0f %12s %9s\n' "$r" "$q" "$(echo "$t1 - $t0" | bc)" "$l_ppl" "$l_s"
done
