#!/usr/bin/env python3
"""Where two pruned SmolLM2 folders (e.g. qdist's and llm-compressor's of the same recipe and
windows) agree: per block and linear, the fraction of weights both prune or both keep, and the
relative difference of the weights. Identical algorithms on the same data agree exactly on the
first block's linears whose inputs both compute alike; near-tie flips then cascade through the
OBS updates and the next blocks' inputs.

    python Benchmarks/compare_masks.py OURS THEIRS [--blocks 0,1,2,5,10,20,29]
"""
import argparse
import glob
import os

import numpy as np
from safetensors.numpy import load_file


def load(folder):
    out = {}
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        out.update(load_file(f))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("theirs")
    ap.add_argument("--blocks", default="0,1,2,5,10,20,29")
    args = ap.parse_args()
    a, b = load(args.ours), load(args.theirs)
    names = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    print("block  " + "  ".join(f"{n.split('.')[1]:>17}" for n in names))
    for blk in map(int, args.blocks.split(",")):
        cells = []
        for n in names:
            k = f"model.layers.{blk}.{n}.weight"
            if k not in a or k not in b:
                cells.append(f"{'-':>17}")
                continue
            x, y = a[k].astype(np.float64), b[k].astype(np.float64)
            agree = np.mean((x == 0) == (y == 0))
            rel = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
            cells.append(f"{agree:8.4f}/{rel:8.1e}")
        print(f"{blk:5d}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
