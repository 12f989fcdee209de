#!/usr/bin/env python3
"""Independent numpy reader for quantized checkpoint folders, written only from
/work/shared/docs/FORMATS.md (§1 safetensors, §4 GPTQ, §5 compressed-tensors pack-quantized and
int-quantized with input activations, §5.2 quantization math).

Usage: quantized_reader.py MODEL_DIR EXPECTED.safetensors

Reads MODEL_DIR/config.json's quantization_config, opens every weight file twice (with the
`safetensors` library, which validates it, and with a small parser of our own, because numpy
has no bfloat16), dequantizes every quantized linear with numpy, and compares each with the
float32 tensor `<module>.weight` in EXPECTED. When EXPECTED also holds `<module>.input`
(tokens, in) and `<module>.output` (tokens, out) — an input and qdist's forward of that linear —
the linear's forward is recomputed here, with the input activations fake-quantized as the
config's `input_activations` say (static `input_scale`/`input_zero_point`, or dynamic per token /
per tensor), and compared too. Prints one JSON line {"format", "linears", "max_abs_diff",
"forwards", "max_forward_diff", "checked_tensors"} and exits 1 on any mismatch or structural
problem (dtype, shape, missing tensor), 0 otherwise.
"""
import json
import os
import re
import struct
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8, "U8": np.uint8,
          "I16": np.int16, "I32": np.int32, "I64": np.int64, "U32": np.uint32, "BF16": None}


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def read_safetensors(path):
    """{name: (dtype string, numpy array)} parsed per FORMATS §1.1; BF16 widened to float32."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    buf = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = buf[begin:end]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = (info["dtype"], arr.reshape(info["shape"]))
    # The reference library must accept the file and agree on names, dtypes and shapes.
    with safe_open(path, framework="numpy") as f:
        keys = set(f.keys())
        if keys != set(out):
            fail(f"{path}: safetensors lists {sorted(keys ^ set(out))} differently")
        for name in keys:
            s = f.get_slice(name)
            if s.get_dtype() != out[name][0] or list(s.get_shape()) != list(out[name][1].shape):
                fail(f"{path}: {name}: safetensors says {s.get_dtype()} {s.get_shape()}")
    if not any(d == "BF16" for d, _ in out.values()):
        for name, arr in load_file(path).items():
            if not np.array_equal(arr, out[name][1]):
                fail(f"{path}: {name}: safetensors.numpy.load_file disagrees")
    return out


def read_folder(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for f in files:
        tensors.update(read_safetensors(os.path.join(folder, f)))
    return tensors


def get(tensors, name, dtype=None, shape=None):
    if name not in tensors:
        fail(f"missing tensor {name}")
    d, arr = tensors[name]
    if dtype is not None and d not in (dtype if isinstance(dtype, tuple) else (dtype,)):
        fail(f"{name}: dtype {d}, expected {dtype}")
    if shape is not None and list(arr.shape) != list(shape):
        fail(f"{name}: shape {list(arr.shape)}, expected {list(shape)}")
    return arr


# ---- §4 GPTQ -------------------------------------------------------------------------------

def gptq_unpack(words, bits):
    """Unpack along axis 0 of `words` (W, cols): value index runs down the packed axis."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    mask = (1 << bits) - 1
    rows = []
    if bits in (2, 4, 8):
        pf = 32 // bits
        for r in range(u.shape[0]):
            for k in range(pf):
                rows.append((u[r] >> (bits * k)) & mask)
        return np.stack(rows)
    assert bits == 3
    for r in range(0, u.shape[0], 3):
        w0, w1, w2 = u[r], u[r + 1], u[r + 2]
        for k in range(10):                                  # values 0-9: word0 bits 0..29
            rows.append((w0 >> (3 * k)) & 7)
        rows.append(((w0 >> 30) & 3) | ((w1 & 1) << 2))     # value 10: word0 bits 30-31 + word1 bit 0
        for k in range(10):                                  # values 11-20: word1 bits 1..30
            rows.append((w1 >> (3 * k + 1)) & 7)
        rows.append(((w1 >> 31) & 1) | ((w2 & 3) << 1))     # value 21: word1 bit 31 + word2 bits 0-1
        for k in range(10):                                  # values 22-31: word2 bits 2..31
            rows.append((w2 >> (3 * k + 2)) & 7)
    return np.stack(rows)


def gptq_dequantize(tensors, module, qc):
    bits = qc["bits"]
    fmt = qc.get("checkpoint_format", qc.get("format", "gptq"))
    qweight = get(tensors, module + ".qweight", "I32")
    out = qweight.shape[1]
    in_features = qweight.shape[0] * 32 // bits
    gs = qc["group_size"]
    groups = 1 if gs == -1 else -(-in_features // gs)
    g_idx = get(tensors, module + ".g_idx", "I32", [in_features]).astype(np.int64)
    scales = get(tensors, module + ".scales", ("F16", "BF16", "F32"), [groups, out]).astype(np.float64)
    qzeros = get(tensors, module + ".qzeros", "I32", [groups, out * bits // 32])
    q = gptq_unpack(qweight, bits)                       # (in, out)
    zst = gptq_unpack(qzeros.T, bits).T                  # (groups, out), packed along out
    zero = zst + 1 if fmt == "gptq" else zst
    w = scales[g_idx] * (q - zero[g_idx])                # (in, out)
    return w.T


# ---- §5 compressed-tensors pack-quantized -------------------------------------------------

def ct_unpack(words, bits, n):
    """pack_to_int32 inverse along axis 1: (rows, W) → (rows, n) unsigned."""
    pf = 32 // bits
    u = words.astype(np.int64) & 0xFFFFFFFF
    parts = [(u >> (bits * k)) & ((1 << bits) - 1) for k in range(pf)]
    return np.stack(parts, axis=2).reshape(u.shape[0], -1)[:, :n]


def ct_match(name, target):
    if target.startswith("re:"):
        return re.match(target[3:], name) is not None
    return target == name or target == "Linear"


def ct_group(module, qc):
    if any(ct_match(module, t) and t != "Linear" for t in qc.get("ignore") or []):
        fail(f"{module} is quantized but ignored")
    for group in qc["config_groups"].values():
        if any(ct_match(module, t) for t in group["targets"]):
            return group
    fail(f"no config group for {module}")


def ct_int_dequantize(tensors, module, qc):
    """int-quantized (§5.3): `weight` I8 signed codes, `weight_scale` (out, groups)."""
    group = ct_group(module, qc)
    if (group.get("format") or qc["format"]) != "int-quantized":
        fail(f"{module}: stores `weight` codes but its group is not int-quantized")
    args = group["weights"]
    q = get(tensors, module + ".weight", "I8").astype(np.int64)
    out, in_features = q.shape
    groups = 1 if args["strategy"] == "channel" else in_features // args["group_size"]
    scale = get(tensors, module + ".weight_scale", ("F16", "BF16", "F32"), [out, groups]).astype(np.float64)
    if args["symmetric"]:
        if module + ".weight_zero_point" in tensors:
            fail(f"{module}: symmetric but has weight_zero_point")
        zp = np.zeros((out, groups), dtype=np.int64)
    else:
        zp = get(tensors, module + ".weight_zero_point", "I8", [out, groups]).astype(np.int64)
    g = np.zeros(in_features, dtype=np.int64) if args["strategy"] == "channel" else np.arange(in_features) // args["group_size"]
    return scale[:, g] * (q - zp[:, g])


def ct_fake_quantize_input(x, tensors, module, qc):
    """§5.2 on the linear's input, in float32 as an int8 kernel's caller computes it:
    q = round_half_even(clamp(x/scale + zp, qmin, qmax)), x̂ = (q − zp)·scale."""
    act = ct_group(module, qc).get("input_activations")
    if act is None:
        return x
    bits, sym = act["num_bits"], act["symmetric"]
    qmin, qmax = np.float32(-(1 << (bits - 1))), np.float32((1 << (bits - 1)) - 1)
    x = x.astype(np.float32)
    eps = np.float32(np.finfo(np.float32).eps)
    if act["dynamic"]:
        if module + ".input_scale" in tensors:
            fail(f"{module}: dynamic activations but input_scale stored")
        axis = 1 if act["strategy"] == "token" else None
        lo = np.minimum(x.min(axis=axis, keepdims=True), np.float32(0))
        hi = np.maximum(x.max(axis=axis, keepdims=True), np.float32(0))
        if sym:
            scale = np.maximum(np.maximum(-lo, hi) / np.float32((qmax - qmin) / 2), eps)
            zp = np.zeros_like(scale)
        else:
            scale = np.maximum((hi - lo) / (qmax - qmin), eps)
            zp = np.round(np.clip(qmin - lo / scale, qmin, qmax))
    else:
        if act["strategy"] != "tensor":
            fail(f"{module}: static activations must be per tensor")
        scale = get(tensors, module + ".input_scale", ("F16", "BF16", "F32"), [1]).astype(np.float32)
        if sym:
            zp = np.zeros(1, dtype=np.float32)
            if module + ".input_zero_point" in tensors:
                fail(f"{module}: symmetric but has input_zero_point")
        else:
            zp = get(tensors, module + ".input_zero_point", "I8", [1]).astype(np.float32)
    q = np.round(np.clip(x / scale + zp, qmin, qmax))  # numpy rounds half to even, as torch
    return (q - zp) * scale


def ct_dequantize(tensors, module, qc):
    args = ct_group(module, qc)["weights"]
    bits, sym = args["num_bits"], args["symmetric"]
    shape = get(tensors, module + ".weight_shape", ("I64", "I32"), [2])
    out, in_features = int(shape[0]), int(shape[1])
    pf = 32 // bits
    packed = get(tensors, module + ".weight_packed", "I32", [out, -(-in_features // pf)])
    groups = 1 if args["strategy"] == "channel" else in_features // args["group_size"]
    scale = get(tensors, module + ".weight_scale", ("F16", "BF16", "F32"), [out, groups]).astype(np.float64)
    offset = 1 << (bits - 1)
    q = ct_unpack(packed, bits, in_features) - offset
    if sym:
        zp = np.zeros((out, groups), dtype=np.int64)
        if module + ".weight_zero_point" in tensors:
            fail(f"{module}: symmetric but has weight_zero_point")
    else:
        zpp = get(tensors, module + ".weight_zero_point", "I32", [-(-out // pf), groups])
        zp = ct_unpack(zpp.T, bits, out).T - offset     # packed along dim 0
    if module + ".weight_g_idx" in tensors:
        g = get(tensors, module + ".weight_g_idx", "I32", [in_features]).astype(np.int64)
    elif args["strategy"] == "channel":
        g = np.zeros(in_features, dtype=np.int64)
    else:
        g = np.arange(in_features) // args["group_size"]
    return scale[:, g] * (q - zp[:, g])


def main():
    folder, expected_path = sys.argv[1], sys.argv[2]
    qc = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]
    tensors = read_folder(folder)
    expected = read_safetensors(expected_path)
    method = qc["quant_method"]
    if method == "gptq":
        suffix, dequantize = ".qweight", gptq_dequantize
    elif method == "compressed-tensors":
        if qc["format"] not in ("pack-quantized", "int-quantized") or qc["quantization_status"] != "compressed":
            fail(f"unexpected compressed-tensors format {qc['format']} / {qc['quantization_status']}")
        if qc["format"] == "int-quantized":
            suffix, dequantize = ".weight_scale", ct_int_dequantize
        else:
            suffix, dequantize = ".weight_packed", ct_dequantize
    else:
        fail(f"unknown quant_method {method}")
    modules = sorted(n[: -len(suffix)] for n in tensors if n.endswith(suffix))
    worst, worst_forward, forwards = 0.0, 0.0, 0
    for m in modules:
        if suffix != ".weight_scale" and m + ".weight" in tensors:
            fail(f"{m}: float weight stored next to the quantized one")
        w = dequantize(tensors, m, qc)
        ref = get(expected, m + ".weight", "F32", list(w.shape)).astype(np.float64)
        diff = float(np.max(np.abs(w - ref))) if w.size else 0.0
        if diff > 1e-6 * max(1.0, float(np.max(np.abs(ref)))):
            fail(f"{m}: max |numpy − qdist| = {diff}")
        worst = max(worst, diff)
        if m + ".input" in expected:
            x = get(expected, m + ".input", "F32")
            y_ref = get(expected, m + ".output", "F32", [x.shape[0], w.shape[0]]).astype(np.float64)
            y = ct_fake_quantize_input(x, tensors, m, qc).astype(np.float64) @ w.T
            if m + ".bias" in tensors:
                y = y + tensors[m + ".bias"][1].astype(np.float64)
            d = float(np.max(np.abs(y - y_ref)))
            if d > 1e-4 * max(1.0, float(np.max(np.abs(y_ref)))):
                fail(f"{m}: forward max |numpy − qdist| = {d}")
            worst_forward = max(worst_forward, d)
            forwards += 1
    extra = {n for n in expected if n.endswith(".input") or n.endswith(".output")}
    if set(expected) - extra != {m + ".weight" for m in modules}:
        fail(f"expected holds {len(set(expected) - extra)} weights, the folder {len(modules)} quantized linears")
    print(json.dumps({"format": method, "linears": len(modules), "max_abs_diff": worst, "forwards": forwards,
                      "max_forward_diff": worst_forward, "checked_tensors": len(tensors)}))


if __name__ == "__main__":
    main()
