#!/usr/bin/env bash
# Mixed precision under a bits-per-weight budget on SmolLM2 (not in CI): uniform GPTQ schemes
# (W3 g64 and W4 g64 asymmetric — the line's two points —, W2 g64, W8 per channel, and the
# uniform schemes just above each budget: W2 g16 asym, W3 per channel sym/asym, W4 g64 sym) and
# budgeted runs of the same recipe (3.0 bits with the wider candidate list of
# smollm2-gptq-budget-3bit.yaml), all with 128 × 512 calibration windows; every folder's all-in
# bits per weight from `qdist inspect`, its wikitext-2 test ppl (40 × 512 windows) and its time.
# Prints a markdown table with, for each budget, the straight line between the uniform W3 and
# W4 points, the nearest uniform run at or above its size, and the ratio of the sensitivity pass
# to the uniform W4 run measured in the same script.
#   Benchmarks/budget_smollm2.sh [BUDGETS="3.0 3.5 4.25"] [WINDOWS=40]
# Env: MODEL (the converted SmolLM2 folder), QDIST (binary), KEEP=DIR keeps the folders there,
# EXTRA="…" more `qdist quantize` flags for the budgeted runs.
set -euo pipefail
cd "$(dirname "$0")/.."
budgets=${1:-3.0 3.5 4.25}
windows=${2:-40}
model=${MODEL:-/root/.cache/qdist/smollm2-135m-instruct}
qdist=${QDIST:-.build/release/qdist}
data=../shared/data/wikitext-2/test.txt
if [ -n "${KEEP:-}" ]; then tmp=$KEEP; mkdir -p "$tmp"; else tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT; fi
rows="$tmp/rows.jsonl"; : > "$rows"

# run NAME QUANTIZE-FLAGS…: quantize, inspect, eval; one JSON line per run.
run() {
  local name=$1; shift
  local start; start=$(date +%s.%N)
  "$qdist" quantize --model "$model" --output "$tmp/$name" --overwrite --json "$@" > "$tmp/$name.json" 2> "$tmp/$name.err"
  local seconds; seconds=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  "$qdist" inspect "$tmp/$name" --json > "$tmp/$name.inspect.json"
  "$qdist" eval --model "$tmp/$name" --data "$data" --windows "$windows" --json > "$tmp/$name.ppl.json" 2>/dev/null
  python3 - "$name" "$seconds" "$tmp/$name.json" "$tmp/$name.inspect.json" "$tmp/$name.ppl.json" >> "$rows" <<'PY'
import json, sys
name, seconds = sys.argv[1], float(sys.argv[2])
report, inspect, ppl = (json.load(open(p)) for p in sys.argv[3:6])
budget = report.get("budget") or {}
print(json.dumps({"name": name, "seconds": seconds, "bits_per_weight": inspect["bits_per_weight"], "ppl": ppl["ppl"],
                  "budget_seconds": budget.get("seconds"), "planned": budget.get("bits_per_weight_planned"),
                  "target": budget.get("bits_per_weight_target"),
                  "schemes": {s: sum(1 for l in budget.get("linears", []) if l["scheme"] == s) for s in budget.get("candidates", [])}}))
PY
  tail -n 1 "$rows"
}

run W4 --config Configs/quantize/smollm2-gptq-w4a16-asym.yaml
run W3 --config Configs/quantize/smollm2-gptq-w3a16-asym.yaml
run W2 --config Configs/quantize/smollm2-gptq-w4a16-asym.yaml --scheme W2A16
run W8 --config Configs/quantize/smollm2-gptq-w4a16-asym.yaml --scheme W8A16
# uniform NAME WEIGHTS: the W4 recipe with its weights line replaced.
uniform() {
  sed "s/weights: {.*}/weights: {$2, observer: minmax}/" Configs/quantize/smollm2-gptq-w4a16-asym.yaml > "$tmp/$1.yaml"
  run "$1" --config "$tmp/$1.yaml"
}
uniform "W2 g16 asym" "num_bits: 2, type: int, symmetric: false, strategy: group, group_size: 16"
uniform "W3 channel sym" "num_bits: 3, type: int, symmetric: true, strategy: channel"
uniform "W3 channel asym" "num_bits: 3, type: int, symmetric: false, strategy: channel"
uniform "W4 g64 sym" "num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 64"
for b in $budgets; do
  config=Configs/quantize/smollm2-gptq-w4a16-asym.yaml
  [ "$b" = 3.0 ] && config=Configs/quantize/smollm2-gptq-budget-3bit.yaml
  # shellcheck disable=SC2086
  run "budget-$b" --config "$config" --bits-per-weight "$b" ${EXTRA:-}
done

python3 - "$rows" <<'PY'
import json, sys
rows = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
w3, w4 = rows["W3"], rows["W4"]
line = lambda b: w3["ppl"] + (w4["ppl"] - w3["ppl"]) * (b - w3["bits_per_weight"]) / (w4["bits_per_weight"] - w3["bits_per_weight"])
print("| run | bits/weight (all-in) | ppl | W3–W4 line at this size | nearest uniform at or above this size | time | sensitivity pass / uniform W4 time |")
print("|---|---|---|---|---|---|---|")
uniform = [r for n, r in rows.items() if not n.startswith("budget")]
for name, r in rows.items():
    b = r["bits_per_weight"]
    larger = [u for u in uniform if u["bits_per_weight"] >= b - 1e-9 and u is not r]
    nearest = min(larger, key=lambda u: u["bits_per_weight"]) if larger else None
    ratio = "%.2f" % (r["budget_seconds"] / w4["seconds"]) if r.get("budget_seconds") else ""
    uniform_cell = "%s (%.4f) %.3f" % (nearest["name"], nearest["bits_per_weight"], nearest["ppl"]) if nearest else "-"
    print("| %s | %.4f | %.3f | %.3f | %s | %.0f s | %s |" % (name, b, r["ppl"], line(b), uniform_cell, r["seconds"], ratio))
PY
