#!/usr/bin/env bash
# Issue 11's check on the real model: the same recipe quantized by one process with 1 and 2
# OpenBLAS threads and by `mpirun -n 2` and `-n 4` must write byte-identical tensors and give
# the same ppl to every digit. Prints, per run, wall seconds, a checksum over every tensor
# (name, dtype, shape, bytes; shards in any split) and the ppl of `qdist eval` (test.txt, 40
# windows of 512). Usage (repository root, after `swift build -c release`):
#   bash Benchmarks/thread_rank_independence.sh [SAMPLES] [RECIPE]
# RUNS picks a subset (default "1proc-1thread 1proc-2threads mpirun-2 mpirun-4"), e.g.
#   RUNS="1proc-2threads mpirun-2" bash Benchmarks/thread_rank_independence.sh 8 Configs/quantize/smollm2-awq-w4a16-asym.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-32}
recipe=${2:-Configs/quantize/smollm2-gptq-w4a16-asym.yaml}
model=$(Launch/get-smollm2.sh | tail -n 1)
qdist=$PWD/.build/release/qdist
out=${OUT:-/tmp/qdist-independence}
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
checksum() {  # every tensor of a folder, in name order, independent of the shard split
  .venv/bin/python3 - "$1" <<'PY'
import glob, hashlib, json, os, struct, sys
h, names = hashlib.sha256(), {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors"))):
    b = open(f, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; meta = json.loads(b[8:8 + n])
    for k, v in meta.items():
        if k != "__metadata__":
            s, e = v["data_offsets"]; names[k] = (v["dtype"], v["shape"], b[8 + n + s:8 + n + e])
for k in sorted(names):
    d, s, data = names[k]; h.update(f"{k}|{d}|{s}|".encode()); h.update(data)
print(f"{len(names)} tensors sha256 {h.hexdigest()[:16]}")
PY
}
run() {  # name, launcher...
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$@" "$qdist" quantize --config "$recipe" --model "$model" --output "$out/$name" --samples "$samples" --overwrite >"$out/$name.log" 2>&1
  local t1=$(date +%s.%N)
  local ppl=$("$qdist" eval --model "$out/$name" --data ../shared/data/wikitext-2/test.txt --windows 40 --json 2>/dev/null | .venv/bin/python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["ppl"]))')
  printf '%-28s %7.1f s  %s  ppl %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$(checksum "$out/$name")" "$ppl"
}
echo "recipe $recipe, $samples samples, OpenBLAS $(dpkg -s libopenblas0-pthread 2>/dev/null | awk '/^Version/{print $2}'), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
tag=$(basename "${recipe%.yaml}")-s$samples
for r in ${RUNS:-1proc-1thread 1proc-2threads mpirun-2 mpirun-4}; do
  case $r in
    1proc-1thread) run "$tag-$r" env OPENBLAS_NUM_THREADS=1 ;;
    1proc-2threads) run "$tag-$r" env OPENBLAS_NUM_THREADS=2 ;;
    mpirun-2) run "$tag-$r" mpirun --oversubscribe -n 2 ;;
    mpirun-4) run "$tag-$r" mpirun --oversubscribe -n 4 ;;
    *) echo "unknown run $r (1proc-1thread, 1proc-2threads, mpirun-2, mpirun-4)" >&2; exit 2 ;;
  esac
done
