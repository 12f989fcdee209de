#!/usr/bin/env python3
"""Checks Tests/Reference/nf4_reference.py (which the Swift tests hold qdist to, bit for bit)
against bitsandbytes itself. Not run in CI: it needs torch and bitsandbytes, e.g.

    python3 -m venv /tmp/bnbvenv && /tmp/bnbvenv/bin/pip install torch numpy bitsandbytes
    /tmp/bnbvenv/bin/python Benchmarks/bnb_nf4_compare.py

bitsandbytes runs here on the CPU. Its CPU path differs from the CUDA kernels qdist follows in
three known places, which the report counts separately instead of hiding:
- the 4-bit codes come from `torch.bucketize` on float32 midpoints (same codes except on exact
  ties), and the short last block is divided by its absmax instead of multiplied by 1/absmax;
- the 8-bit absmax codes come from a lookup-table approximation of "nearest"
  (csrc/cpu_ops.cpp, `norm_to_lut_index`), which can pick a neighbouring code;
- the double-quantization offset is torch's float32 mean (reduction-order dependent last bit).
"""
import os
import sys

import numpy as np
import torch
import bitsandbytes.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Reference"))
import nf4_reference as ref  # noqa: E402


def compare(n, quant_type, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 0.02).astype(np.float32)
    x[rng.random(n) < 0.001] *= 30  # a few outliers, as real weights have
    packed, state = F.quantize_4bit(torch.from_numpy(x.copy()), blocksize=64, quant_type=quant_type,
                                    compress_statistics=True)
    bnb_packed = packed.numpy().reshape(-1)
    bnb_q = state.absmax.numpy()
    bnb_absmax2 = state.state2.absmax.numpy()
    bnb_offset = np.float32(state.offset.item())
    bnb_code8 = state.state2.code.numpy()

    our_packed, our_absmax = ref.quantize_4bit(x, quant_type, 64)
    # First-level absmax without double quantization, from bnb too.
    _, plain = F.quantize_4bit(torch.from_numpy(x.copy()), blocksize=64, quant_type=quant_type, compress_statistics=False)
    bnb_absmax = plain.absmax.numpy()
    offset, q, absmax2 = ref.double_quantize(our_absmax)
    # The 8-bit step again, from bnb's offset, to separate "mean" from "nearest code" effects.
    centred = (our_absmax - bnb_offset).astype(np.float32)
    q_same_offset = ref.nearest_code8(ref.scaled_by_block(centred, ref.blocks_absmax(centred, 256), 256))
    ours_deq = ref.dequantize(our_packed, ref.dequantize_absmax(offset, q, absmax2), n, quant_type, 64)
    bnb_deq = F.dequantize_4bit(packed, state).numpy().reshape(-1)
    return {
        "n": n, "type": quant_type,
        "code8_identical": bool((bnb_code8.view(np.uint32) == ref.CODE8.view(np.uint32)).all()),
        "absmax_identical": bool((bnb_absmax.view(np.uint32) == our_absmax.view(np.uint32)).all()),
        "packed_bytes_differing": int((bnb_packed != our_packed).sum()), "packed_bytes": int(our_packed.size),
        "offset_ulps": int(abs(int(np.array(offset).view(np.int32)) - int(np.array(bnb_offset).view(np.int32)))),
        "absmax2_identical": bool((bnb_absmax2.view(np.uint32) == absmax2.view(np.uint32)).all()),
        "qabsmax_differing": int((bnb_q != q).sum()),
        "qabsmax_differing_same_offset": int((bnb_q != q_same_offset).sum()),
        "qabsmax_max_index_gap": int(np.abs(bnb_q.astype(int) - q.astype(int)).max()), "blocks": int(q.size),
        "dequant_max_abs_diff": float(np.abs(ours_deq - bnb_deq).max()),
    }


def main():
    print(f"torch {torch.__version__}, bitsandbytes {__import__('bitsandbytes').__version__}")
    for quant_type in ["nf4", "fp4"]:
        for n, seed in [(64 * 256 * 3 + 64 * 5 + 17, 1), (4097, 2), (576 * 1536, 3)]:
            print(compare(n, quant_type, seed))


if __name__ == "__main__":
    main()
