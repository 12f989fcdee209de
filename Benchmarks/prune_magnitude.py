"""Magnitude pruning of a float safetensors Llama folder, for the sparse-kernel benchmark.

Every decoder linear (model.layers.*.{q,k,v,o,gate,up,down}_proj.weight) keeps the two largest
|w| of each group of four consecutive inputs (per output row, along the input dimension, as
compressed-tensors' sparse-24 groups run) and gets +0.0 at the other two (FORMATS.md 12.6.11:
never -0.0). On a tie the lower position is kept (stable sort). Everything else is copied unchanged,
so the folder differs from its source only in those zeros.
With --unstructured P, each row instead loses its round(P * in) smallest |w| wherever they are
(Wanda-style per-row comparison groups, FORMATS.md 12.2), for the unstructured kernel.

Usage: prune_magnitude.py SRC_FOLDER DST_FOLDER [--unstructured P]
"""
import os
import re
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

LINEAR = re.compile(r"^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$")


def prune_24(w: np.ndarray) -> np.ndarray:
    groups = w.reshape(-1, 4)
    # argsort of -|w|, stable: positions 2 and 3 of the order are the two smallest (on a tie the higher index is pruned).
    order = np.argsort(-np.abs(groups), axis=1, kind="stable")
    out = groups.copy()
    np.put_along_axis(out, order[:, 2:], 0.0, axis=1)
    return out.reshape(w.shape)


def prune_rows(w: np.ndarray, sparsity: float) -> np.ndarray:
    k = int(round(sparsity * w.shape[1]))
    order = np.argsort(np.abs(w), axis=1, kind="stable")
    out = w.copy()
    np.put_along_axis(out, order[:, :k], 0.0, axis=1)
    return out


def main(src: str, dst: str, unstructured: float | None) -> None:
    os.makedirs(dst, exist_ok=False)
    pruned = 0
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name.endswith(".safetensors"):
            tensors = load_file(path)
            for key, w in tensors.items():
                if LINEAR.match(key):
                    if w.dtype != np.float32 or w.ndim != 2 or w.shape[1] % 4:
                        sys.exit(f"{key}: expected a float32 (out, in) matrix with in % 4 == 0, got {w.dtype} {w.shape}")
                    tensors[key] = prune_24(w) if unstructured is None else prune_rows(w, unstructured)
                    pruned += 1
            save_file(tensors, os.path.join(dst, name), metadata={"format": "pt"})
        elif os.path.isfile(path):
            shutil.copy(path, dst)
    what = "2:4" if unstructured is None else f"{unstructured:.0%} unstructured"
    print(f"pruned {pruned} linears to {what} into {dst}", file=sys.stderr)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 4 and args[2] == "--unstructured":
        main(args[0], args[1], float(args[3]))
    elif len(args) == 2:
        main(args[0], args[1], None)
    else:
        sys.exit(__doc__)
