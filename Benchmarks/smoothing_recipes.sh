#!/usr/bin/env bash
# Runs the shipped SmoothQuant / AWQ / static-W8A8 recipes on SmolLM2 and prints one line per
# recipe: calibration windows, quantize seconds, and ppl on wikitext-2 test (40 × 512), the
# protocol of issue 13's table. Outputs go to $OUT (default /tmp/qdist-smoothing).
#   Benchmarks/smoothing_recipes.sh [RECIPE.yaml:SAMPLES ...]   (a name in Configs/quantize/ or a path)
# Defaults: the 128-window W8A8 recipes and the 32-window AWQ ones. QDIST selects the binary.
# SAMPLER (default python_random) draws the windows as the llm-compressor reference script does
# (random.seed(0); random.randint), so both tools calibrate on the same windows.
set -euo pipefail
cd "$(dirname "$0")/.."
qdist=${QDIST:-.build/release/qdist}
[ -x "$qdist" ] || swift build -c release --product qdist >&2
model=$(Launch/get-smollm2.sh | tail -n 1)
out=${OUT:-/tmp/qdist-smoothing}
sampler=${SAMPLER:-python_random}
mkdir -p "$out"
runs=("$@")
if [ ${#runs[@]} -eq 0 ]; then
  runs=(smollm2-rtn-w8a8-static.yaml:128 smollm2-sq-w8a8-static.yaml:128 smollm2-sq-w8a8.yaml:128
        smollm2-sq-gptq-w8a8.yaml:128 smollm2-awq-w4a16-asym.yaml:32 smollm2-awq-gptq-w4a16-asym.yaml:32)
fi
for run in "${runs[@]}"; do
  recipe=${run%%:*}; samples=${run##*:}
  name=$(basename "${recipe%.yaml}")-$samples-$sampler
  [[ $recipe == */* ]] || recipe=Configs/quantize/$recipe
  start=$(date +%s.%N)
  "$qdist" quantize --config "$recipe" --model "$model" --samples "$samples" --seed 0 --sampler "$sampler" \
    --data ../shared/data/wikitext-2/valid.txt --output "$out/$name" --overwrite > "$out/$name.log" 2>&1
  seconds=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  ppl=$("$qdist" eval --model "$out/$name" --data ../shared/data/wikitext-2/test.txt --windows 40 --json 2>/dev/null \
        | python3 -c "import json, sys; print(round(json.load(sys.stdin)['ppl'], 3))")
  echo "$(basename "$recipe") samples=$samples sampler=$sampler seconds=$seconds ppl=$ppl"
done
