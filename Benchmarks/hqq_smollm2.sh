#!/usr/bin/env bash
# HQQ on SmolLM2, qdist against the hqq library on the same weights and windows (not in CI):
# for W4 and W3 g64, qdist quantize (one process, and mpirun -n 2 with the per-rank solve times),
# qdist eval of our float-zero folder, and qdist eval of the library's dequantized model
# (Benchmarks/hqq_library_model.py in the venv Benchmarks/hqq_reference.sh makes).
#   Benchmarks/hqq_smollm2.sh [WINDOWS=40]
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${1:-40}
venv=${HQQ_VENV:-/root/.cache/qdist/hqq-venv}
model=${MODEL:-/root/.cache/qdist/smollm2-135m-instruct}
data=../shared/data/wikitext-2/test.txt
qdist=.build/release/qdist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tensor_digest() { python3 Benchmarks/tensor_digest.py "$1"; }
ppl() { "$qdist" eval --model "$1" --data "$data" --windows "$windows" --json 2>/dev/null | python3 -c "import json,sys; print(round(json.load(sys.stdin)['ppl'], 3))"; }
for bits in 4 3; do
  recipe=Configs/quantize/smollm2-hqq-w${bits}a16.yaml
  start=$(date +%s.%N)
  "$qdist" quantize --config "$recipe" --model "$model" --output "$tmp/q$bits" --json > "$tmp/q$bits.json" 2>/dev/null
  one=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  start=$(date +%s.%N)
  mpirun --allow-run-as-root --oversubscribe -n 2 "$qdist" quantize --config "$recipe" --model "$model" --output "$tmp/n$bits" --json > "$tmp/n$bits.json" 2>/dev/null
  two=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  same=$([ "$(tensor_digest "$tmp/q$bits")" = "$(tensor_digest "$tmp/n$bits")" ] && echo true || echo false)
  ours=$(ppl "$tmp/q$bits")
  lib=$("$venv/bin/python" Benchmarks/hqq_library_model.py --model "$model" --output "$tmp/lib$bits" --nbits "$bits")
  theirs=$(ppl "$tmp/lib$bits")
  python3 - "$tmp/q$bits.json" "$tmp/n$bits.json" "$bits" "$one" "$two" "$ours" "$theirs" "$lib" "$same" <<'PY'
import json, sys
q, n = (json.load(open(p)) for p in sys.argv[1:3])
bits, one, two, ours, theirs, lib, same = sys.argv[3:]
solve = [r.get("solve") for r in n.get("seconds_per_rank", [])]
print(json.dumps({"bits": int(bits), "group_size": 64, "qdist_ppl": float(ours), "hqq_library_ppl": float(theirs),
                  "relative_difference": abs(float(ours) - float(theirs)) / float(theirs),
                  "qdist_seconds_1_process": float(one), "qdist_seconds_mpirun_2": float(two),
                  "solve_seconds_1_process": q.get("seconds", {}).get("solve"), "solve_seconds_per_rank_mpirun_2": solve,
                  "mpirun_2_same_tensors": same == "true", "library": json.loads(lib)}))
PY
done
