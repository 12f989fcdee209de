#!/usr/bin/env python3
"""Quantizes SmolLM2 linears with the hqq library itself (mobiusml/hqq, `Quantizer.quantize`
with optimize=True, which runs `optimize_weights_proximal_legacy` in float32 on the CPU) and
writes what it returns, for HQQLibraryAgreementTests to compare HQQSolver with.

Run through Benchmarks/hqq_reference.sh, which makes the venv. Output (safetensors, all F32):
    <name>.weight            the float32 input, (out, in)
    <name>.nbits<b>.scale    (out, in / group_size)   the library's stored scale (1/s)
    <name>.nbits<b>.zero     (out, in / group_size)   the library's zero point (float)
    <name>.nbits<b>.W_q      (out, in)                the library's codes, 0 … 2^b − 1
metadata: group_size, nbits, hqq and torch versions, and <name>.nbits<b>.steps, the number of
proximal steps the library ran (counted by wrapping optimize_weights_proximal_legacy_step).
"""
import argparse
import json
import os
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import hqq
from hqq.core import optimize
from hqq.core.quantize import Quantizer

PROJECTIONS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

steps = [0]
_step = optimize.optimize_weights_proximal_legacy_step


def counting_step(*args, **kwargs):
    steps[0] += 1
    return _step(*args, **kwargs)


# optimize_weights_proximal_legacy looks the step up as a module global on every call.
optimize.optimize_weights_proximal_legacy_step = counting_step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="/root/.cache/qdist/smollm2-135m-instruct")
    parser.add_argument("--layers", default="0,15")
    parser.add_argument("--nbits", default="4,3")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--output", default="/tmp/hqq_reference.safetensors")
    args = parser.parse_args()
    assert Quantizer.optimize_weights is optimize.optimize_weights_proximal_legacy, "hqq's default solver changed"

    tensors, meta = {}, {"group_size": str(args.group_size), "nbits": args.nbits,
                         "hqq": hqq.__version__, "torch": torch.__version__}
    seconds = 0.0
    with safe_open(os.path.join(args.model, "model.safetensors"), framework="pt") as f:
        for layer in [int(x) for x in args.layers.split(",")]:
            for proj in PROJECTIONS:
                name = f"model.layers.{layer}.{proj}"
                w = f.get_tensor(name + ".weight").float().contiguous()
                tensors[name + ".weight"] = w
                for nbits in [int(x) for x in args.nbits.split(",")]:
                    steps[0] = 0
                    start = time.perf_counter()
                    w_q, m = Quantizer.quantize(w, nbits=nbits, channel_wise=True, group_size=args.group_size,
                                                optimize=True, round_zero=False, axis=1, bitpack=False,
                                                compute_dtype=torch.float32, device="cpu")
                    seconds += time.perf_counter() - start
                    groups = w.shape[1] // args.group_size
                    key = f"{name}.nbits{nbits}"
                    tensors[key + ".scale"] = m["scale"].float().reshape(w.shape[0], groups).contiguous()
                    tensors[key + ".zero"] = m["zero"].float().reshape(w.shape[0], groups).contiguous()
                    tensors[key + ".W_q"] = w_q.float().reshape(w.shape).contiguous()
                    meta[key + ".steps"] = str(steps[0])
    save_file(tensors, args.output, metadata=meta)
    print(json.dumps({"output": args.output, "linears": sum(k.endswith(".weight") for k in tensors),
                      "hqq_seconds": round(seconds, 2), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
