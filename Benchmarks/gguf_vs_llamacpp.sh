#!/bin/bash
# Issue 15's comparison with llama.cpp on SmolLM2: qdist's GGUF export against
# convert_hf_to_gguf.py + llama-quantize, byte for byte, and the perplexity of each file in
# llama.cpp (llama-perplexity) next to qdist eval's on the same windows.
#
#   bash Benchmarks/gguf_vs_llamacpp.sh [MIXES...]      (default: every mix qdist offers)
#
# Needs a release build (.build/release/qdist), SmolLM2 in ~/.cache/qdist (Launch/get-smollm2.sh)
# and llama.cpp's tools (Benchmarks/llamacpp_env.sh says how to build them). For the converter check, CONVERT_PY: a python with torch,
# transformers and llama.cpp's gguf-py (skipped when unset). PPL=0 skips the perplexities;
# PLAIN=0 skips qdist eval's own column (float32 activations), keeping the llama.cpp-rounded one
# (`eval --llamacpp-activations`) and llama-perplexity's; IMATRIX=FILE reuses an importance matrix;
# ROWS="no" (or "yes") runs only the rows without (with) it.
# Heavy (tens of minutes on 2 cores): not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/llamacpp_env.sh
out=${OUT:-/tmp/qdist-gguf-compare}
mixes=("${@:-Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K TQ2_0}")
read -r -a mixes <<< "${mixes[*]}"
mkdir -p "$out"

"$bin" convert "$model" "$out/qdist-F32.gguf" --gguf-type F32 --overwrite > /dev/null
if [ -n "${CONVERT_PY:-}" ]; then
  "$CONVERT_PY" "$llama/../../convert_hf_to_gguf.py" "$model" --outtype f32 --outfile "$out/convert-F32.gguf" > /dev/null 2>&1
  "$CONVERT_PY" - "$out/convert-F32.gguf" "$out/qdist-F32.gguf" <<'EOF'
import sys, gguf, numpy as np
a, b = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2])
names = {"general.name", "general.finetune", "general.basename", "general.size_label", "general.quantized_by",
         "GGUF.kv_count"}
ka = [k for k in a.fields if k not in names]; kb = [k for k in b.fields if k not in names]
same_keys = ka == kb and all(a.fields[k].contents() == b.fields[k].contents() and a.fields[k].types == b.fields[k].types for k in ka)
same_tensors = [t.name for t in a.tensors] == [t.name for t in b.tensors] and all(
    x.tensor_type == y.tensor_type and np.array_equal(x.data, y.data) for x, y in zip(a.tensors, b.tensors))
print(f"convert_hf_to_gguf F32 vs qdist F32: metadata (general.name family aside) {'identical' if same_keys else 'DIFFERENT'}, "
      f"{len(a.tensors)} tensors {'identical' if same_tensors else 'DIFFERENT'}")
EOF
fi

# One importance matrix (qdist's, 128 windows of valid.txt) for the imatrix rows.
if [ -n "${IMATRIX:-}" ]; then
  cp "$IMATRIX" "$out/smollm2.imatrix.gguf"
else
  "$bin" imatrix --model "$model" --data ../shared/data/wikitext-2/valid.txt --samples 128 --output "$out/smollm2.imatrix.gguf" --overwrite > /dev/null 2>&1
fi

printf '%-8s %-8s %8s %9s %9s %10s %10s %14s %11s\n' mix imatrix bpw qdist_s llama_s identical qdist_ppl qdist_llamacpp llama_ppl
for mix in "${mixes[@]}"; do
  for im in ${ROWS:-no yes}; do
    extra_q=(); extra_l=()
    if [ "$im" = yes ]; then extra_q=(--imatrix "$out/smollm2.imatrix.gguf"); extra_l=(--imatrix "$out/smollm2.imatrix.gguf"); fi
    t0=$(date +%s.%N)
    json=$("$bin" convert "$model" "$out/qdist-$mix-$im.gguf" --gguf-type "$mix" "${extra_q[@]}" --overwrite --json)
    t1=$(date +%s.%N)
    "$llama/llama-quantize" "${extra_l[@]}" "$out/qdist-F32.gguf" "$out/llama-$mix-$im.gguf" "$mix" 2 > "$out/llama-$mix-$im.log" 2>&1
    t2=$(date +%s.%N)
    same=$(cmp -s "$out/qdist-$mix-$im.gguf" "$out/llama-$mix-$im.gguf" && echo yes || echo NO)
    bpw=$(echo "$json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["bits_per_weight"], 3))')
    qp=-; qe=-; lp=-
    if [ "${PPL:-1}" = 1 ]; then
      if [ "${PLAIN:-1}" = 1 ]; then qp=$(ppl_qdist "$out/qdist-$mix-$im.gguf"); fi
      qe=$(ppl_qdist "$out/qdist-$mix-$im.gguf" --llamacpp-activations)
      lp=$(ppl_llama "$out/qdist-$mix-$im.gguf")
    fi
    printf '%-8s %-8s %8s %9.1f %9.1f %10s %10s %14s %11s\n' "$mix" "$im" "$bpw" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$same" "$qp" "$qe" "$lp"
  done
done
