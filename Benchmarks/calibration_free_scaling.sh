#!/usr/bin/env bash
# Scaling of the calibration-free path (CalibrationFreeQuantizer: the whole model's linears dealt
# to ranks at once, each rank stages what it solved) on SmolLM2 (not in CI): for each recipe,
# qdist quantize on P = 1, 2, 4 ranks (one OpenBLAS thread each), the wall time, every rank's
# solve seconds, the speedup over P = 1 measured in the same run, the balance (mean over max
# per-rank solve) and whether the tensors are byte-identical to P = 1. On a machine with fewer
# cores than ranks the wall time cannot scale; the balance still shows the dealing.
#   Benchmarks/calibration_free_scaling.sh [RANKS="1 2 4"] [RECIPES="hqq-w4a16 nf4"]
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-1 2 4}
recipes=${2:-hqq-w4a16 nf4}
model=${MODEL:-/root/.cache/qdist/smollm2-135m-instruct}
qdist=.build/release/qdist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tensor_digest() { python3 Benchmarks/tensor_digest.py "$1"; }
for recipe in $recipes; do
  config=Configs/quantize/smollm2-$recipe.yaml
  base_wall=""; base_digest=""
  for p in $ranks; do
    out="$tmp/$recipe-n$p"
    launch=()
    [ "$p" -gt 1 ] && launch=(mpirun --allow-run-as-root --oversubscribe -n "$p")
    start=$(date +%s.%N)
    OPENBLAS_NUM_THREADS=1 "${launch[@]}" "$qdist" quantize --config "$config" --model "$model" --output "$out" > /dev/null 2>&1
    wall=$(python3 -c "print($(date +%s.%N) - $start)")
    digest=$(tensor_digest "$out")
    [ -z "$base_wall" ] && { base_wall=$wall; base_digest=$digest; }
    python3 - "$out/quantization_report.json" "$recipe" "$p" "$wall" "$base_wall" "$digest" "$base_digest" <<'PY'
import json, sys
report, recipe, p, wall, base, digest, base_digest = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7]
solve = [r["solve"] for r in report["seconds_per_rank"]]
print(json.dumps({"recipe": recipe, "ranks": p, "wall_s": round(wall, 2), "speedup_vs_1": round(base / wall, 2),
                  "solve_s_per_rank": [round(s, 2) for s in solve], "balance_mean_over_max": round(sum(solve) / len(solve) / max(solve), 3),
                  "identical_to_1_rank": digest == base_digest}))
PY
  done
done
