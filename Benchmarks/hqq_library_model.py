#!/usr/bin/env python3
"""Quantizes every decoder linear of a float checkpoint with the hqq library itself
(mobiusml/hqq `Quantizer.quantize`, optimize=True: the legacy proximal solver, float32 on CPU,
axis=1 groups) and writes the dequantized model as a float folder, so `qdist eval` can score the
library's HQQ on exactly the windows it scores qdist's (Benchmarks/hqq_smollm2.sh).

    python hqq_library_model.py --model DIR --output DIR --nbits 4 [--group-size 64]
Every file of DIR is copied; model.safetensors gets the dequantized linears in float32 (the
other tensors unchanged). Prints the library's seconds as JSON.
"""
import argparse
import json
import os
import shutil
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hqq.core.quantize import Quantizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--nbits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=64)
    args = ap.parse_args()
    os.makedirs(args.output, exist_ok=True)
    for name in os.listdir(args.model):
        if name != "model.safetensors" and os.path.isfile(os.path.join(args.model, name)):
            shutil.copy(os.path.join(args.model, name), args.output)
    tensors, seconds, linears = {}, 0.0, 0
    with safe_open(os.path.join(args.model, "model.safetensors"), framework="pt") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            if name.startswith("model.layers.") and name.endswith("_proj.weight"):
                w = t.float().contiguous()
                start = time.perf_counter()
                w_q, meta = Quantizer.quantize(w, nbits=args.nbits, channel_wise=True, group_size=args.group_size,
                                               optimize=True, round_zero=False, axis=1, bitpack=False,
                                               compute_dtype=torch.float32, device="cpu")
                seconds += time.perf_counter() - start
                t = Quantizer.dequantize(w_q, meta).float().reshape(w.shape).contiguous()
                linears += 1
            tensors[name] = t
    save_file(tensors, os.path.join(args.output, "model.safetensors"), metadata={"format": "pt"})
    print(json.dumps({"linears": linears, "hqq_seconds": round(seconds, 2), "nbits": args.nbits}))


if __name__ == "__main__":
    main()
