#!/usr/bin/env bash
# qdist eval next to transformers (torch, CPU) on the same converted SmolLM2 folder, windows and
# threads, plus this machine's sgemm GFLOP/s to show how near the limit the forward runs
# (a 512-token window costs ≈ 2·params FLOP per token for the weights, plus attention).
# Not in CI. Needs a torch venv (see Benchmarks/transformers_reference.py).
#
#   Benchmarks/eval_vs_transformers.sh [WINDOWS=8] [TORCH_PYTHON=/tmp/torchvenv/bin/python]
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${1:-8}
torch_python=${2:-/tmp/torchvenv/bin/python}
data=../shared/data/wikitext-2/test.txt
swift build -c release --product qdist >&2
swift build -c release --product qdist-bench >&2
model=$(Launch/get-smollm2.sh | tail -n 1)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
OPENBLAS_NUM_THREADS=2 .build/release/qdist eval --model "$model" --data "$data" --windows "$windows" --json > "$tmp/qdist.json"
"$torch_python" Benchmarks/transformers_reference.py --model "$model" --data "$data" --windows "$windows" --threads 2 > "$tmp/torch.json"
.build/release/qdist-bench --sizes 2048 --threads 2 --repeats 3 > "$tmp/sgemm.json" 2>/dev/null
python3 - "$tmp" "$model" <<'PY'
import json, os, sys
d, model = sys.argv[1:3]
q = json.load(open(os.path.join(d, "qdist.json")))
t = json.load(open(os.path.join(d, "torch.json")))
s = json.load(open(os.path.join(d, "sgemm.json")))
cfg = json.load(open(os.path.join(model, "config.json")))
params = 134_515_008
h, L, seq = cfg["hidden_size"], cfg["num_hidden_layers"], q["seq_len"]
# per token: weights 2·params, attention scores + values 2·2·seq/2·hidden·L on average (causal)
flop_per_token = 2 * params + 2 * seq * h * L
peak = max(r["raw_cblas_gflops"] for r in s["results"])
out = {
    "windows": q["windows"], "seq_len": seq, "threads": 2,
    "qdist": {"ppl": q["ppl"], "tokens_per_s": q["tokens_per_s"], "peak_rss_bytes": q["peak_rss_bytes"]},
    "transformers": {"ppl": t["ppl"], "tokens_per_s": t["tokens_per_s"], "torch": t["torch"]},
    "qdist_over_transformers_speed": q["tokens_per_s"] / t["tokens_per_s"],
    "sgemm_gflops_2_threads": peak, "openblas_core": s["openblas_core"],
    "qdist_achieved_gflops": q["tokens_per_s"] * flop_per_token / 1e9,
    "transformers_achieved_gflops": t["tokens_per_s"] * flop_per_token / 1e9,
}
out["qdist_fraction_of_sgemm_peak"] = out["qdist_achieved_gflops"] / peak
print(json.dumps(out, indent=2))
PY
