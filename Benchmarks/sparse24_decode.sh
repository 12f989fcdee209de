#!/usr/bin/env bash
# Decode speed of a 2:4-pruned model through the compressed sparse kernel against the dense
# sgemm on the same folder, plus the original dense model: issue 24 item 5's measurement.
# Magnitude-prunes every decoder linear of MODEL to 2:4 (Benchmarks/prune_magnitude.py; with
# UNSTRUCTURED=P instead a fraction P of each row anywhere, for the unstructured kernel) into a
# temporary folder, then runs `qdist generate` greedily (same prompt, TOKENS new tokens) on
#   original   MODEL, as stored
#   sparse     the pruned folder, 2:4 kernel (the default)
#   dense      the pruned folder, --dense
# ROUNDS times, interleaved so drift in machine load hits all three alike, and reports the best
# tokens/s of each and the ratios. Fails if the sparse and dense runs of the pruned folder do not
# generate the same tokens. OpenBLAS's core type and thread count are left as the environment sets
# them (the sparse kernel uses the same thread count). Prints one JSON object; progress to stderr.
# Usage: Benchmarks/sparse24_decode.sh [MODEL] [OUT.json]   (env: TOKENS=128 ROUNDS=3 UNSTRUCTURED= PYTHON=...
#        PRUNED=DIR to time a folder pruned already, e.g. qdist's SparseGPT 2:4 output, instead of magnitude pruning)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/root/.cache/qdist/smollm2-135m-instruct}
out=${2:-/dev/stdout}
tokens=${TOKENS:-128}
rounds=${ROUNDS:-3}
python=${PYTHON:-.venv/bin/python3}
[ -x "$python" ] || python=python3
swift build -c release --product qdist >&2
bin=.build/release/qdist
tmp=$(mktemp -d /tmp/qdist-sparse24.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${PRUNED:-}" ]; then
  # A folder pruned already (e.g. by `qdist quantize --config Configs/quantize/smollm2-sparsegpt-2of4.yaml`).
  ln -s "$(cd "$PRUNED" && pwd)" "$tmp/pruned"
else
  "$python" Benchmarks/prune_magnitude.py "$model" "$tmp/pruned" ${UNSTRUCTURED:+--unstructured "$UNSTRUCTURED"}
fi
prompt="The history of the Roman Empire begins"
for r in $(seq 1 "$rounds"); do
  for variant in original sparse dense; do
    case $variant in
      original) args=(--model "$model") ;;
      sparse) args=(--model "$tmp/pruned") ;;
      dense) args=(--model "$tmp/pruned" --dense) ;;
    esac
    "$bin" generate "${args[@]}" --prompt "$prompt" --max-tokens "$tokens" --temperature 0 --json > "$tmp/$variant.$r.json"
    echo "round $r $variant: $("$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.1f tokens/s, %d tokens, %d sparse linears" % (d["tokens_per_s"], len(d["tokens"]), d["sparse_linears"]))' "$tmp/$variant.$r.json")" >&2
  done
done
"$python" - "$tmp" "$rounds" "$model" "$tokens" "${UNSTRUCTURED:-}" > "$out" <<'PY'
import json, os, sys
d, rounds, model, tokens, unstructured = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
runs = {v: [json.load(open(os.path.join(d, f"{v}.{r}.json"))) for r in range(1, rounds + 1)]
        for v in ("original", "sparse", "dense")}
best = {v: max(x["tokens_per_s"] for x in rs) for v, rs in runs.items()}
same = all(s["tokens"] == runs["dense"][0]["tokens"] for s in runs["sparse"] + runs["dense"])
report = {
    "benchmark": "sparse24_decode", "model": model, "max_tokens": tokens, "rounds": rounds,
    "pruning": f"{float(unstructured):.0%} unstructured" if unstructured else "2:4",
    "generated_tokens": len(runs["sparse"][0]["tokens"]),
    "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE"),
    "threads": int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0))),
    "sparse_linears": runs["sparse"][0]["sparse_linears"],
    "sparse_linears_by_kind": runs["sparse"][0]["sparse_linears_by_kind"],
    "tokens_per_s": {v: round(best[v], 2) for v in best},
    "tokens_per_s_every_round": {v: [round(x["tokens_per_s"], 2) for x in rs] for v, rs in runs.items()},
    "sparse_over_dense_pruned": round(best["sparse"] / best["dense"], 3),
    "sparse_over_original": round(best["sparse"] / best["original"], 3),
    "sparse_and_dense_same_tokens": same,
}
print(json.dumps(report, indent=2))
if not same:
    sys.exit("the sparse kernel generated other tokens than the dense path on the pruned folder")
PY
