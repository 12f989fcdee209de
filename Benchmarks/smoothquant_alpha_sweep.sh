#!/usr/bin/env bash
# SmoothQuant + static W8A8 on SmolLM2 for each fixed smoothing_strength and for `auto` (per
# mapping, α from {0.3 … 0.9} by the summed output loss of every rank's windows): one line per
# α with quantize seconds and wikitext-2 test ppl (40 × 512), via smoothing_recipes.sh (same
# windows as llm-compressor: SAMPLER=python_random). Issue 13 asks that auto beat the best
# fixed α of {0.5 … 0.9}.
#   Benchmarks/smoothquant_alpha_sweep.sh [SAMPLES (default 32)] [ALPHA ...]
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-32}
shift || true
alphas=("$@")
[ ${#alphas[@]} -gt 0 ] || alphas=(0.5 0.6 0.7 0.8 0.9 auto)
recipes=${OUT:-/tmp/qdist-smoothing}/alpha-recipes
mkdir -p "$recipes"
runs=()
for a in "${alphas[@]}"; do
  f=$recipes/smollm2-sq-w8a8-static-alpha-$a.yaml
  sed -E "s/smoothing_strength: [0-9.a-z]+/smoothing_strength: $a/" Configs/quantize/smollm2-sq-w8a8-static.yaml > "$f"
  grep -q "smoothing_strength: $a\$" "$f" || { echo "could not set smoothing_strength in $f" >&2; exit 1; }
  runs+=("$f:$samples")
done
bash Benchmarks/smoothing_recipes.sh "${runs[@]}"
