#!/usr/bin/env python3
"""Writes llama.cpp's own quantizer output as a fixture for Tests/QDistIOTests/GGMLQuantizeTests.

Loads ggml's CPU-independent library (libggml-base.so) with ctypes and calls
`ggml_quantize_chunk(type, src, dst, start=0, nrows, n_per_row, imatrix)` — the function
`llama-quantize` calls per tensor — on deterministic inputs, for every type qdist encodes, with
no importance vector and with two. The Swift encoders must reproduce every byte, so CI checks
them against llama.cpp without needing llama.cpp.

    GGML_BASE_LIB=/path/to/libggml-base.so ggml_quantize_vectors.py OUT.vectors
    ggml_quantize_vectors.py --stress SEED OUT.vectors   many more random matrices, same layout

The committed fixture is the first form. The second writes a large file for a one-off check:
point the Swift tests at it with QDIST_GGML_QUANTIZE_VECTORS=OUT.vectors.

GGML_BASE_LIB defaults to the library llama-cpp-python 0.3.36 builds (x86-64 baseline, no
-march, no fast-math), whose float arithmetic plain Swift reproduces bit for bit.

File layout (little-endian throughout):

    magic          4 bytes  b"QGQV"
    version        u32      1
    source         u32 n + n bytes UTF-8: the library and llama.cpp version that wrote it
    matrix_count   u32
    matrix_count × matrix:
        name           u32 n + n bytes UTF-8
        rows, row_len  u32, u32
        values         f32[rows * row_len]      row-major, the quantizer's input
        imp_count      u32
        importance     f32[imp_count][row_len]  imatrix vectors (one weight per column)
        entry_count    u32
        entry_count × entry:
            ggml_type      u32                  GGML_TYPE_* id
            importance     u32                  0 = no imatrix (the _ref path), k = importance[k-1]
            byte_count     u32
            bytes          u8[byte_count]       ggml_quantize_chunk's output for all rows

Float types (F32, F16, BF16) appear only without importance: ggml_quantize_chunk never passes
the imatrix to their converters. Every block type appears with all three importance choices,
including Q8_0/TQ1_0/TQ2_0, whose quantize functions receive the imatrix and ignore it.
"""
import ctypes
import os
import struct
import sys

import numpy as np

DEFAULT_LIB = os.path.expanduser(
    "~/.cache/qdist/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/libggml-base.so")
SOURCE = "llama.cpp (llama-cpp-python 0.3.36 vendor) libggml-base.so ggml_quantize_chunk, x86-64 baseline build"

# GGML_TYPE_* ids (ggml/include/ggml.h).
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 = 0, 1, 2, 3, 6, 7, 8
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16, TQ1_0, TQ2_0 = 10, 11, 12, 13, 14, 30, 34, 35
FLOAT_TYPES = [F32, F16, BF16]
BLOCK_TYPES = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0]


def load(path):
    lib = ctypes.CDLL(path)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_row_size.restype = ctypes.c_size_t
    lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
    lib.ggml_quantize_init.restype = None
    lib.ggml_quantize_init.argtypes = [ctypes.c_int]
    return lib


def quantize(lib, qtype, values, importance):
    rows, row_len = values.shape
    assert not lib.ggml_quantize_requires_imatrix(qtype), qtype
    lib.ggml_quantize_init(qtype)  # a no-op for these types; ggml_quantize_chunk calls it too
    out = np.zeros(rows * lib.ggml_row_size(qtype, row_len), dtype=np.uint8)
    src = np.ascontiguousarray(values, dtype=np.float32)
    imp = None if importance is None else np.ascontiguousarray(importance, dtype=np.float32)
    written = lib.ggml_quantize_chunk(qtype, src.ctypes.data, out.ctypes.data, 0, rows, row_len,
                                      None if imp is None else imp.ctypes.data)
    assert written == out.size, (qtype, written, out.size)
    return out.tobytes()


def mixed(rng):
    """12 rows × 512 (2 super-blocks, 16 legacy blocks per row) covering the encoders' branches."""
    x = np.zeros((12, 512), dtype=np.float32)
    for r in range(4):  # ordinary weight-like rows
        x[r] = rng.standard_normal(512) * 0.02
    x[4] = rng.standard_normal(512) * 0.02  # a few large outliers
    x[4, [3, 77, 200, 301, 302, 460]] = [1.5, -2.0, 0.9, -1.1, 3.0, -0.7]
    # Row 5: an all-zero super-block (so all-zero legacy blocks and sub-blocks), then constant
    # 32-blocks of either sign, a block with a single non-zero value, and -0.0s.
    x[5, 256:288] = 0.37
    x[5, 288:320] = -1.25
    x[5, 320:352] = 0.0
    x[5, 333] = 0.5
    x[5, 352:384] = -0.0
    x[5, 384:512] = rng.standard_normal(128) * 0.1
    # Row 6: constant super-blocks (positive, then negative).
    x[6, :256] = 0.37
    x[6, 256:] = -0.8
    # Row 7: tiny values (fp16 scales underflow to 0) next to small ordinary ones.
    x[7, :256] = rng.standard_normal(256) * 1e-20
    x[7, 256:384] = rng.standard_normal(128) * 1e-30
    x[7, 384:] = rng.standard_normal(128) * 1e-4
    # Row 8: values exactly on rounding ties of the reference encoders.
    half = lambda n, lo, hi: rng.integers(2 * lo, 2 * hi, n) * 0.5 + 0.0
    x[8, 0:32] = np.concatenate([[-8.0], half(31, -8, 8)])             # Q4_0: d = 1, x + 8.5 exact
    x[8, 32:64] = np.concatenate([[-16.0], half(31, -16, 16)])         # Q5_0: d = 1
    x[8, 64:96] = np.concatenate([[127.0], half(31, -127, 127)])       # Q8_0: x/d = k + 0.5
    x[8, 96:128] = np.concatenate([[0.0, 15.0], half(30, 0, 15)])      # Q4_1: d = 1, min 0
    x[8, 128:160] = np.concatenate([[0.0, 31.0], half(30, 0, 31)])     # Q5_1: d = 1, min 0
    x[8, 160:256] = half(96, -4, 4)
    x[8, 256:512] = half(256, -8, 8) * 0.25                             # k-quant half levels
    # Row 9: all-positive (min clamps to 0), then all-negative values.
    x[9, :256] = np.abs(rng.standard_normal(256)) * 0.05 + 0.01
    x[9, 256:] = -np.abs(rng.standard_normal(256)) * 0.05 - 0.01
    x[10] = rng.standard_normal(512)  # unit scale
    x[11] = rng.standard_t(3, 512) * 0.03  # heavy tails
    return x


def nonfinite(rng):
    """4 rows × 512 that C handles without complaint but a careless port traps on: NaN, ±inf,
    ±3e38 (x/d far outside any code range) and subnormals whose 1/d overflows to inf."""
    x = (rng.standard_normal((4, 512)) * 0.1).astype(np.float32)
    x[0, :32] = np.nan
    x[0, [40, 300, 301]] = [np.nan, np.inf, -np.inf]
    x[1, :256] = np.inf
    x[1, 260] = -np.inf
    x[2, :32] = 1e-44
    x[2, 256:] = 1e-40
    x[3, [5, 70, 200, 400]] = [3e38, -3e38, 1e-45, np.nan]
    return x


def short(rng):
    """3 rows × 256: one super-block per row, so the row mean square is the block's."""
    x = np.zeros((3, 256), dtype=np.float32)
    x[0] = rng.standard_normal(256) * 0.05
    x[1] = rng.uniform(-0.3, 0.2, 256)
    x[2] = rng.standard_t(2, 256) * 0.01
    return x


def specials():
    """1 row × 64 for the float types: NaNs (quiet, signaling, with payloads), infinities, fp16
    overflow and subnormals, and bf16 rounding ties."""
    bits = [0x7FC00000, 0xFFC00001, 0x7F800001, 0x7FA5A5A5, 0x7F800000, 0xFF800000, 0x00000000, 0x80000000,
            0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF,
            0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F807FFF, 0x7F7F8000, 0xC0008000]  # bf16 ties and near-ties
    values = [65504.0, 65519.0, 65520.0, -70000.0, 6.1035156e-05, 6.097555e-05, 5.9604645e-08,
              2.9802322e-08, 2.9802326e-08, -8.940697e-08, 1e-8, 1.0009765625, 1.00048828125,
              1.00146484375, 3.14159265, -2.71828183, 1e20, -1e-20]
    x = np.zeros(64, dtype=np.float32)
    x.view(np.uint32)[:len(bits)] = np.array(bits, dtype=np.uint32)
    x[len(bits):len(bits) + len(values)] = values
    rest = 64 - len(bits) - len(values)
    x[64 - rest:] = np.random.default_rng(3).standard_normal(rest).astype(np.float32)
    return x.reshape(1, 64)


def stress(seed):
    """Random matrices from many distributions and row lengths, for a one-off wide check."""
    rng = np.random.default_rng(seed)
    out = []
    for i, row_len in enumerate([256, 512, 1024, 768]):
        n = 48
        draws = {
            "normal": rng.standard_normal((n, row_len)) * 10.0 ** rng.uniform(-4, 1, (n, 1)),
            "uniform": rng.uniform(-1, 1, (n, row_len)) + rng.uniform(-1, 1, (n, 1)),
            "laplace": rng.laplace(0, 0.02, (n, row_len)),
            "sparse": rng.standard_normal((n, row_len)) * (rng.random((n, row_len)) < 0.05),
            "steps": rng.integers(-20, 20, (n, row_len)) * 2.0 ** rng.integers(-12, 2, (n, 1)) / 4,
            "lognormal": np.exp(rng.standard_normal((n, row_len)) * 3) * rng.choice([-1, 1], (n, row_len)) * 1e-3,
            "offset": rng.standard_normal((n, row_len)) * 0.01 + rng.uniform(-0.5, 0.5, (n, 1)),
            "tiny": rng.standard_normal((n, row_len)) * 10.0 ** rng.uniform(-38, -10, (n, 1)),
        }
        for name, x in draws.items():
            out.append((f"stress-{name}-{row_len}", x.astype(np.float32), BLOCK_TYPES))
    return out


def importances(rng, row_len):
    """A positive imatrix vector with a wide range (like mean squared activations), and the same
    with zeros: every 7th column, one whole 32-block and one 16-sub-block."""
    positive = np.exp(rng.standard_normal(row_len) * 1.5).astype(np.float32)
    zeros = positive.copy()
    zeros[::7] = 0
    zeros[64:96] = 0
    zeros[160:176] = 0
    return [positive, zeros]


def string(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def main(args):
    lib = load(os.environ.get("GGML_BASE_LIB") or DEFAULT_LIB)
    rng = np.random.default_rng(20250607)
    if args[0] == "--stress":
        matrices, out_path = stress(int(args[1])), args[2]
    else:
        matrices, out_path = [("mixed", mixed(rng), BLOCK_TYPES), ("short", short(rng), BLOCK_TYPES),
                              ("nonfinite", nonfinite(rng), BLOCK_TYPES), ("specials", specials(), [])], args[0]
    blob = b"QGQV" + struct.pack("<I", 1) + string(SOURCE) + struct.pack("<I", len(matrices))
    for name, values, block_types in matrices:
        rows, row_len = values.shape
        imps = importances(rng, row_len) if block_types else []
        entries = [(t, 0, quantize(lib, t, values, None)) for t in FLOAT_TYPES]
        for t in block_types:
            entries.append((t, 0, quantize(lib, t, values, None)))
            for k, imp in enumerate(imps):
                entries.append((t, k + 1, quantize(lib, t, values, imp)))
        blob += string(name) + struct.pack("<II", rows, row_len) + values.astype("<f4").tobytes()
        blob += struct.pack("<I", len(imps)) + b"".join(i.astype("<f4").tobytes() for i in imps)
        blob += struct.pack("<I", len(entries))
        for t, k, data in entries:
            blob += struct.pack("<III", t, k, len(data)) + data
    with open(out_path, "wb") as f:
        f.write(blob)
    print(f"{out_path}: {len(blob)} bytes, {sum(1 for m in matrices)} matrices", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
