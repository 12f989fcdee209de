#!/usr/bin/env python3
"""bitsandbytes 4-bit quantization (NF4/FP4, blockwise, double-quantized absmax) in numpy,
for Tests/QDistPipelineTests/NF4ReferenceTests.swift.

Written from the bitsandbytes algorithm (FORMATS.md section 6; bnb's `functional.py`
create_dynamic_map / quantize_4bit / quantize_blockwise and the CUDA kernels dQuantizeNF4,
dQuantizeFP4, dQuantize<0>), vectorised the numpy way, sharing no code with qdist:

- thresholds are derived here from bnb's decimal literals with exact rational rounding;
- 4-bit codes are `searchsorted` counts over those thresholds, not a decision tree;
- the 8-bit nearest code is the closed form of the CUDA binary search (nearest by float32
  midpoint, an exact midpoint going to the even index), not the search itself.

Usage:

    nf4_reference.py quantize IN.f32 OUT_DIR TYPE BLOCKSIZE
        IN.f32: raw little-endian float32 values (the flattened tensor).
        Writes into OUT_DIR: packed.u8, absmax.f32 (first level, plain), offset.f32,
        qabsmax.u8, absmax2.f32 (double quantization, blocks of 256), dequant.f32 (values
        rebuilt from the double-quantized absmax), code8.f32 (the dynamic map).

The module's functions are also imported by Benchmarks/bnb_nf4_compare.py, which checks them
against bitsandbytes itself.
"""
import os
import sys
from fractions import Fraction

import numpy as np

F32 = np.float32

NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=F32)
FP4 = (np.array([0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3], dtype=F32) / F32(12)).astype(F32)

# The CUDA kernels' comparison literals, ascending (kernels.cu dQuantizeNF4 / dQuantizeFP4).
NF4_LITERALS = ["-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
                "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
                "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
                "0.5016634166240692", "0.6427869200706482", "0.8614784181118011"]
FP4_LITERALS = ["0.00260417", "0.0859375", "0.20833333", "0.29166667", "0.4166667", "0.583333", "0.8333333"]
# Stored FP4 code of the k-th smallest magnitude 0, 1/192, 1/6, 1/4, 1/3, 1/2, 2/3, 1.
FP4_MAGNITUDE_CODE = np.array([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011], dtype=np.uint8)


def float32_literal(text):
    """The float32 a C compiler makes of a decimal literal: exactly rounded (ties to even)."""
    exact = Fraction(text)
    guess = F32(float(exact))
    candidates = [np.nextafter(guess, F32(-np.inf)), guess, np.nextafter(guess, F32(np.inf))]
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.uint32)) & 1))


NF4_THRESHOLDS = np.array([float32_literal(t) for t in NF4_LITERALS], dtype=F32)
FP4_THRESHOLDS = np.array([float32_literal(t) for t in FP4_LITERALS], dtype=F32)


def torch_linspace_f32(n):
    """torch.linspace(0.1, 1, n, dtype=float32) on x86 CPU: first half start + step*i, second
    half end - step*(n-1-i), each a fused multiply-add (emulated exactly in float64)."""
    start, end = F32(0.1), F32(1.0)
    step = F32((end - start) / F32(n - 1))
    half = n // 2
    out = np.empty(n, dtype=F32)
    for i in range(n):
        if i < half:
            out[i] = F32(np.float64(start) + np.float64(step) * i)
        else:
            out[i] = F32(np.float64(end) - np.float64(step) * (n - 1 - i))
    return out


def create_dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) in float32."""
    data = []
    for i in range(7):
        b = torch_linspace_f32(2 ** i + 1)
        means = ((b[:-1] + b[1:]) / F32(2.0)).astype(F32)
        scale = F32(10.0 ** (i - 6))
        data += list((scale * means).astype(F32))
        data += list((-scale * means).astype(F32))
    data += [F32(0.0), F32(1.0)]
    assert len(data) == 256
    return np.sort(np.array(data, dtype=F32))


CODE8 = create_dynamic_map()


def blocks_absmax(x, blocksize):
    n = x.size
    nb = -(-n // blocksize)
    padded = np.zeros(nb * blocksize, dtype=F32)
    padded[:n] = np.abs(x)
    return padded.reshape(nb, blocksize).max(axis=1).astype(F32)


def scaled_by_block(x, absmax, blocksize, zero_block_scale=None):
    """x * (1/absmax of its block). An all-zero block has 1/0 = inf, so 0*inf = NaN (what the
    CUDA kernel computes); `zero_block_scale` replaces that reciprocal when given."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = (F32(1.0) / absmax).astype(F32)
        if zero_block_scale is not None:
            inverse = np.where(absmax == 0, F32(zero_block_scale), inverse).astype(F32)
        return (x * np.repeat(inverse, blocksize)[:x.size]).astype(F32)


def four_bit_codes(scaled, quant_type):
    if quant_type == "nf4":
        codes = np.searchsorted(NF4_THRESHOLDS, scaled, side="left").astype(np.uint8)
    else:
        magnitude = np.searchsorted(FP4_THRESHOLDS, np.abs(scaled), side="left")
        magnitude = np.minimum(magnitude, 7)
        codes = FP4_MAGNITUDE_CODE[magnitude] | np.where(scaled < 0, 8, 0).astype(np.uint8)
    return np.where(np.isnan(scaled), 0, codes).astype(np.uint8)  # NaN fails every `x > t`


def quantize_4bit(x, quant_type="nf4", blocksize=64):
    """(packed uint8, absmax float32) as bnb's quantize_4bit (CUDA semantics)."""
    x = np.asarray(x, dtype=F32).reshape(-1)
    absmax = blocks_absmax(x, blocksize)
    # An all-zero block stores the code of 0.0, as bnb's CPU/default backend does (qdist's choice;
    # CUDA would store NaN's code 0).
    scaled = scaled_by_block(x, absmax, blocksize, zero_block_scale=0.0)
    codes = four_bit_codes(scaled, quant_type)
    if x.size % 2:
        # The kernel loads the missing partner as 0.0 and scales it like the rest of the block.
        pad = scaled_by_block(np.zeros(1, dtype=F32), absmax[-1:], 1, zero_block_scale=0.0)
        codes = np.concatenate([codes, four_bit_codes(pad, quant_type)])
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    return packed, absmax


def nearest_code8(s):
    """Index of the nearest CODE8 entry by float32 midpoints; an exact midpoint keeps the even
    index; NaN -> 0 (the CUDA search's answer)."""
    k = np.clip(np.searchsorted(CODE8, s, side="right") - 1, 0, 254)
    mid = ((CODE8[k] + CODE8[k + 1]) * F32(0.5)).astype(F32)
    even = np.where(k % 2 == 0, k, k + 1)
    idx = np.where(s > mid, k + 1, np.where(s < mid, k, even))
    return np.where(np.isnan(s), 0, idx).astype(np.uint8)


def double_quantize(absmax, blocksize=256):
    """(offset, qabsmax uint8, absmax2 float32) as quantize_4bit(compress_statistics=True),
    with the mean taken in float64 and rounded once to float32."""
    offset = F32(np.mean(absmax.astype(np.float64)))
    centred = (absmax - offset).astype(F32)
    absmax2 = blocks_absmax(centred, blocksize)
    q = nearest_code8(scaled_by_block(centred, absmax2, blocksize))
    return offset, q, absmax2


def dequantize(packed, absmax, n, quant_type="nf4", blocksize=64):
    code = NF4 if quant_type == "nf4" else FP4
    codes = np.empty(packed.size * 2, dtype=np.uint8)
    codes[0::2] = packed >> 4
    codes[1::2] = packed & 0x0F
    return (code[codes[:n]] * np.repeat(absmax, blocksize)[:n]).astype(F32)


def dequantize_absmax(offset, q, absmax2, blocksize=256):
    return ((CODE8[q] * np.repeat(absmax2, blocksize)[:q.size]).astype(F32) + offset).astype(F32)


def main():
    if len(sys.argv) != 6 or sys.argv[1] != "quantize":
        sys.exit(__doc__)
    _, _, path, out, quant_type, blocksize = sys.argv
    x = np.fromfile(path, dtype="<f4")
    blocksize = int(blocksize)
    packed, absmax = quantize_4bit(x, quant_type, blocksize)
    offset, q, absmax2 = double_quantize(absmax)
    rebuilt = dequantize(packed, dequantize_absmax(offset, q, absmax2), x.size, quant_type, blocksize)
    os.makedirs(out, exist_ok=True)
    for name, value in [("packed.u8", packed), ("absmax.f32", absmax), ("offset.f32", np.array([offset], dtype=F32)),
                        ("qabsmax.u8", q), ("absmax2.f32", absmax2), ("dequant.f32", rebuilt), ("code8.f32", CODE8)]:
        value.astype(value.dtype.newbyteorder("<")).tofile(os.path.join(out, name))


if __name__ == "__main__":
    main()
