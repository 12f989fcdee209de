#!/usr/bin/env bash
# Reproducible speed numbers for the foundations: sgemm GFLOP/s (Tensor API vs raw cblas, 1 and
# 2 threads, with OpenBLAS's core as set and with OPENBLAS_CORETYPE unset) and MPI allreduce GB/s
# at 2 and 4 ranks (64 MiB buffer). Prints one JSON object; progress goes to stderr.
# Usage: Benchmarks/run.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qdist-bench >&2
swift build -c release --product qdist >&2
bin=.build/release
out=${1:-/dev/stdout}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin/qdist-bench" > "$tmp/sgemm_as_set.json"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bin/qdist-bench" > "$tmp/sgemm_unset.json"
for n in 2 4; do
  mpirun --allow-run-as-root --oversubscribe -n "$n" "$bin/qdist" env --json --skip-checks --bandwidth-mib 64 > "$tmp/allreduce_$n.json"
done
python3 - "$tmp" > "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
load = lambda n: json.load(open(os.path.join(d, n)))
print(json.dumps({
    "sgemm_coretype_as_set": load("sgemm_as_set.json"),
    "sgemm_coretype_unset": load("sgemm_unset.json"),
    "allreduce_gbps": {str(n): load(f"allreduce_{n}.json")["allreduce_gbps"] for n in (2, 4)},
}, indent=2))
PY
