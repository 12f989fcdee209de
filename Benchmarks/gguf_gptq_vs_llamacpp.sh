#!/bin/bash
# Issue 15's GPTQ-quality GGUF on SmolLM2: `qdist quantize --format gguf` (GPTQ's codes on
# llama.cpp's block scales) against llama-quantize's own encoders with the same importance
# matrix, per mix; both files scored by qdist eval and by llama.cpp's llama-perplexity on the
# same windows (wikitext-2 test, second half of each 512-token window, llama-perplexity's rule).
#
#   bash Benchmarks/gguf_gptq_vs_llamacpp.sh [MIXES...]      (default: Q4_0 Q3_K_M)
#
# Needs a release build, SmolLM2 (Launch/get-smollm2.sh) and llama.cpp's tools (LLAMA_BIN; see
# Benchmarks/llamacpp_env.sh for the build). The imatrix is qdist imatrix's over
# the calibration windows GPTQ uses (128 × 512 of valid.txt); IMATRIX=file takes another (e.g.
# llama-imatrix's). GPTQ runs twice per mix: importance from that file (the like-for-like row)
# and from each linear's own Hessian diagonal (the recipe's default). WINDOWS (40) sets the
# evaluation windows, SAMPLES (128) the calibration windows; AWQ=1 adds AWQ + GPTQ (AWQ_SAMPLES windows). Heavy (about 10 minutes per mix on 2 cores): not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/llamacpp_env.sh
out=${OUT:-/tmp/qdist-gguf-gptq}
samples=${SAMPLES:-128}
recipe=Configs/quantize/smollm2-gptq-gguf-q4_k_m.yaml
mixes=("${@:-Q4_0 Q3_K_M}")
read -r -a mixes <<< "${mixes[*]}"
mkdir -p "$out"

"$bin" convert "$model" "$out/F32.gguf" --gguf-type F32 --overwrite > /dev/null
imatrix=${IMATRIX:-$out/smollm2.imatrix.gguf}
if [ -z "${IMATRIX:-}" ]; then
  "$bin" imatrix --model "$model" --data ../shared/data/wikitext-2/valid.txt --samples "$samples" --seq-len 512 \
    --output "$imatrix" --overwrite > /dev/null 2>&1
fi

seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

printf '%-8s %-34s %8s %9s %10s %11s\n' mix encoder bpw seconds qdist_ppl llama_ppl
for mix in "${mixes[@]}"; do
  t0=$(date +%s.%N)
  "$llama/llama-quantize" --imatrix "$imatrix" "$out/F32.gguf" "$out/llama-$mix.gguf" "$mix" 2 > "$out/llama-$mix.log" 2>&1
  t1=$(date +%s.%N)
  bpw=$("$bin" inspect "$out/llama-$mix.gguf" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(8 * d["total_bytes"] / d["parameter_count"], 3))')
  printf '%-8s %-34s %8s %9s %10s %11s\n' "$mix" "llama-quantize --imatrix" "$bpw" "$(seconds "$t0" "$t1")" \
    "$(ppl_qdist "$out/llama-$mix.gguf")" "$(ppl_llama "$out/llama-$mix.gguf")"
  for importance in "$imatrix" hessian; do
    name=gptq-$mix-$( [ "$importance" = hessian ] && echo hessian || echo imatrix )
    t0=$(date +%s.%N)
    "$bin" quantize --config "$recipe" --model "$model" --gguf-type "$mix" --imatrix "$importance" --samples "$samples" \
      --output "$out/$name.gguf" --overwrite --no-resume > "$out/$name.log" 2>&1
    t1=$(date +%s.%N)
    label="qdist GPTQ, importance $( [ "$importance" = hessian ] && echo "Hessian diag" || echo "same imatrix")"
    printf '%-8s %-34s %8s %9s %10s %11s\n' "$mix" "$label" "$bpw" "$(seconds "$t0" "$t1")" \
      "$(ppl_qdist "$out/$name.gguf")" "$(ppl_llama "$out/$name.gguf")"
  done
  if [ -n "${AWQ:-}" ]; then
    # AWQ then GPTQ on the mix's blocks (importance from the Hessians; AWQ_SAMPLES windows, 32 by
    # default: the search runs the attention and MLP forward per candidate, about 25 minutes here).
    name=awq-gptq-$mix
    t0=$(date +%s.%N)
    "$bin" quantize --config Configs/quantize/smollm2-awq-gptq-gguf-q4_0.yaml --model "$model" --gguf-type "$mix" \
      --samples "${AWQ_SAMPLES:-32}" --output "$out/$name.gguf" --overwrite --no-resume > "$out/$name.log" 2>&1
    t1=$(date +%s.%N)
    printf '%-8s %-34s %8s %9s %10s %11s\n' "$mix" "qdist AWQ + GPTQ, Hessian diag" "$bpw" "$(seconds "$t0" "$t1")" \
      "$(ppl_qdist "$out/$name.gguf")" "$(ppl_llama "$out/$name.gguf")"
  fi
done
