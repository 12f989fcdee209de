#!/usr/bin/env bash
# qdist's --format compressed-tensors-legacy-sparse folders decompressed by compressed-tensors
# 0.14.0 itself (the last release with the sparse compressors; llm-compressor 0.10 pins it), not
# in CI: for each recipe, the tiny model is pruned (and quantized) into the legacy folder and into
# the default dense-zeros folder; ModelCompressor.from_compression_config must accept the
# legacy quantization_config, and its sparsity compressor (BitmaskCompressor /
# Sparse24BitMaskCompressor) must give back every tensor of the dense folder bit for bit.
# The venv (CPU torch from pip's find-links, compressed-tensors==0.14.0) lives in
# ${QDIST_CACHE:-~/.cache/qdist}/ct014-venv and is made once.
#   Benchmarks/legacy_sparse_ct014_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${QDIST_CACHE:-$HOME/.cache/qdist}/ct014-venv
qdist=${QDIST:-.build/debug/qdist}
data=../shared/data/wikitext-2/valid.txt
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # torch first, the CPU wheel of pip config's find-links folder (PyPI's default build is CUDA's).
  links=$(pip config get global.find-links 2>/dev/null || echo /opt/wheels)
  "$venv/bin/pip" install --quiet "$links"/torch-*+cpu-*.whl
  # compressed-tensors 0.14.0 imports psutil without declaring it.
  "$venv/bin/pip" install --quiet compressed-tensors==0.14.0 psutil
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$qdist" tiny-model "$tmp/tiny" --layers 2 --hidden 64 --heads 4 --kv-heads 2 --intermediate 128 --seed 5 > /dev/null
declare -A recipes=(
  [sgpt-2of4]='  SparseGPTModifier: {mask_structure: "2:4", block_size: 32}'
  [wanda-unstructured]='  WandaPruningModifier: {sparsity: 0.5}'
  [sgpt-2of4-w8a8]=$'  - SparseGPTModifier: {mask_structure: "2:4", block_size: 32}\n  - GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}'
)
status=0
for name in "${!recipes[@]}"; do
  printf 'calibration: {data: %s, samples: 8, seq_len: 64, seed: 1}\nrecipe:\n%s\n' "$data" "${recipes[$name]}" > "$tmp/$name.yaml"
  "$qdist" quantize --config "$tmp/$name.yaml" --model "$tmp/tiny" --output "$tmp/$name-dense" > /dev/null
  "$qdist" quantize --config "$tmp/$name.yaml" --model "$tmp/tiny" --output "$tmp/$name-legacy" --format compressed-tensors-legacy-sparse > /dev/null
  "$venv/bin/python" - "$name" "$tmp/$name-legacy" "$tmp/$name-dense" <<'PY' || status=1
import json, sys
import numpy as np
import torch
from safetensors import safe_open
import compressed_tensors
from compressed_tensors.compressors import ModelCompressor

name, legacy, dense = sys.argv[1:]
config = json.load(open(f"{legacy}/config.json"))["quantization_config"]
compressor = ModelCompressor.from_compression_config(config)
sparse = compressor.sparsity_compressor
assert sparse is not None, "no sparsity compressor for " + config["sparsity_config"]["format"]
with safe_open(f"{dense}/model.safetensors", framework="pt") as f:
    expected = {k: f.get_tensor(k) for k in f.keys()}
got = dict(sparse.decompress(legacy))
compressed = sum(1 for k in got if k.endswith(".weight") and k not in safe_open(f"{legacy}/model.safetensors", framework="pt").keys())
bad = [k for k in expected if k not in got or got[k].dtype != expected[k].dtype or not torch.equal(got[k], expected[k])]
extra = sorted(set(got) - set(expected))
# And the other way: compressed-tensors' own compress_weight of the dense folder (its topk
# picks the kept zeros of a group with fewer than two nonzeros) gives qdist's bytes.
with safe_open(f"{legacy}/model.safetensors", framework="pt") as f:
    written = {k: f.get_tensor(k) for k in f.keys()}
targets = {k[:-len(".bitmask")] for k in written if k.endswith(".bitmask")}
recompressed = sparse.compress(expected, compression_targets=targets)
unequal = [k for k in written if k not in recompressed or recompressed[k].dtype != written[k].dtype
           or recompressed[k].shape != written[k].shape or not torch.equal(recompressed[k], written[k])]
# compressed-tensors' get_24_bytemasks takes abs() of int8 codes, and abs(-128) overflows to
# -128: it keeps a zero instead of a -128 code, so its own output would lose that weight (its
# decompress of qdist's folder above is exact). Groups differing only for that are its bug.
ties = sum(int(((expected[m + ".weight"].reshape(-1, 4) == 0).sum(dim=1) > 2).sum()) for m in targets)
def unpack(mask, cols):
    return torch.from_numpy(np.unpackbits(mask.numpy(), axis=-1, bitorder="little")[:, :cols].astype(bool)).reshape(-1, 4)
overflow, differing = 0, len(unequal)
for module in sorted({k.rsplit(".", 1)[0] for k in unequal}):
    w = expected[module + ".weight"]
    differ = (unpack(recompressed[module + ".bitmask"], w.shape[1]) != unpack(written[module + ".bitmask"], w.shape[1])).any(dim=1)
    if w.dtype == torch.int8 and bool((w.reshape(-1, 4)[differ] == -128).any(dim=1).all()):
        unequal = [k for k in unequal if not k.startswith(module + ".")]
        overflow += int(differ.sum())
print(f"{name}: compressed-tensors {compressed_tensors.__version__} {type(sparse).__name__} decompressed {compressed} weights; "
      f"{len(expected) - len(bad)}/{len(expected)} tensors equal the dense-zeros folder" + (f"; differing {bad[:3]}" if bad else "")
      + (f"; extra {extra[:3]}" if extra else "")
      + f"; its compress of the dense folder gives {len(written) - differing}/{len(written)} of qdist's tensors"
      + (f" ({ties} of its groups hold more than two zeros: the kept zeros follow torch's topk)" if ties and "24" in type(sparse).__name__ else "")
      + (f" (differing {unequal[:3]})" if unequal else "")
      + (f"; the other {differing} differ only in {overflow} groups holding an int8 -128, which its abs() overflow would drop" if overflow else ""))
# The tie table of CompressedTensorsSparsity.keptInGroup (pinned in CompressedTensorsSparsityTests):
# rows [0,0,0,0], [5,0,0,0], [0,5,0,0], [0,0,5,0], [0,0,0,5] keep these bitmask bytes.
ties_ok = True
if "24" in type(sparse).__name__:
    probe = torch.tensor([[0, 0, 0, 0], [5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 5]], dtype=torch.bfloat16)
    kept = sparse.compress_weight("p", probe)["p.bitmask"].flatten().tolist()
    ties_ok = kept == [0b1100, 0b0101, 0b1010, 0b1100, 0b1100]
    print(f"{name}: torch {torch.__version__} topk keeps {kept} in the five tie groups" + ("" if ties_ok else " — NOT qdist's table [12, 5, 10, 12, 12]"))
sys.exit(1 if bad or extra or unequal or not ties_ok else 0)
PY
done
exit $status
