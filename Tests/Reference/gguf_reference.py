#!/usr/bin/env python3
"""GGUF fixtures and reference dequantizations from gguf-py, for Tests/QDistIOTests/GGUF*Tests.

gguf-py (pip package `gguf`, llama.cpp's own Python library) writes every file here and
computes every expected value, so qdist's reader is checked against an implementation it
shares no code with. Usage:

    gguf_reference.py types OUT_DIR      one tensor per ggml type + expected.safetensors
    gguf_reference.py metadata OUT.gguf  every metadata value type, nested arrays included
    gguf_reference.py model OUT_DIR ARCH a tiny llama/qwen2 model + HF-layout expected.safetensors
    gguf_reference.py dequantize FILE.gguf OUT.safetensors   every tensor of FILE, dequantized
    gguf_reference.py quantize IN.f32 ROW_LEN OUT_DIR TYPE...  gguf.quants.quantize of the
                                         little-endian float32 rows in IN.f32 per TYPE, raw
                                         bytes to OUT_DIR/TYPE.bin

Expected values are stored as float32 safetensors keyed by tensor name.
"""
import math
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from safetensors.numpy import save_file

ROWS, COLS = 3, 512  # several rows; every row is 2+ blocks of every block type (256 or 32)

# Offsets of the fp16 super-block scales inside each k-quant block (FORMATS.md §2.3).
K_SCALE_OFFSETS = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}


def random_finite_halves(rng, n):
    """n random fp16 bit patterns with exponent < 31 (no inf/NaN), any sign, subnormals included."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    exponent_all_ones = (bits & 0x7C00) == 0x7C00
    bits[exponent_all_ones] &= 0xBFFF  # clear the top exponent bit: now finite
    return bits


def types(out_dir):
    rng = np.random.default_rng(20240601)
    writer = gguf.GGUFWriter(os.path.join(out_dir, "types.gguf"), "llama")
    expected = {}
    data = (rng.standard_normal((ROWS, COLS)) * 0.05).astype(np.float32)
    data[0, :7] = [0.0, -0.0, 1.0, -1.0, 1e-8, 3.0, -2.5]
    for qtype in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.TQ1_0, T.TQ2_0):
        q = gguf.quants.quantize(data, qtype)
        if qtype in (T.F32, T.F16):
            writer.add_tensor(qtype.name, q)
        else:
            writer.add_tensor(qtype.name, q, raw_dtype=qtype)
        expected[qtype.name] = np.ascontiguousarray(gguf.quants.dequantize(q, qtype), dtype=np.float32)
    for qtype, offsets in K_SCALE_OFFSETS.items():
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        blocks = rng.integers(0, 256, size=(ROWS * COLS // block_size, type_size), dtype=np.uint8)
        for off in offsets:
            blocks[:, off:off + 2] = random_finite_halves(rng, blocks.shape[0]).view(np.uint8).reshape(-1, 2)
        raw = blocks.reshape(ROWS, COLS // block_size * type_size)
        writer.add_tensor(qtype.name, raw, raw_dtype=qtype)
        expected[qtype.name] = np.ascontiguousarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)
    # A 3-D tensor: ggml dims [64, 3, 2], row-major shape [2, 3, 64].
    cube = (rng.standard_normal((2, 3, 64))).astype(np.float32)
    q = gguf.quants.quantize(cube, T.Q8_0)
    writer.add_tensor("Q8_0_3d", q, raw_dtype=T.Q8_0)
    expected["Q8_0_3d"] = np.ascontiguousarray(gguf.quants.dequantize(q, T.Q8_0), dtype=np.float32)
    finish(writer)
    save_file(expected, os.path.join(out_dir, "expected.safetensors"))


def metadata(path):
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_custom_alignment(64)
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -100)
    writer.add_uint16("t.u16", 60000)
    writer.add_int16("t.i16", -30000)
    writer.add_uint32("t.u32", 4000000000)
    writer.add_int32("t.i32", -2000000000)
    writer.add_float32("t.f32", 3.14159)
    writer.add_uint64("t.u64", 2**63 + 5)
    writer.add_int64("t.i64", -(2**62))
    writer.add_float64("t.f64", 2.718281828459045)
    writer.add_bool("t.true", True)
    writer.add_bool("t.false", False)
    writer.add_string("t.str", "h\u00e9llo \u2713 \U0001F600")
    writer.add_key_value("t.empty", "", gguf.GGUFValueType.STRING)  # add_string skips empty values
    writer.add_array("t.arr.str", ["a", "bb", "", "d\u00e9j\u00e0 vu"])
    writer.add_array("t.arr.i32", [1, -2, 3])
    writer.add_array("t.arr.f32", [0.5, -1.25])
    writer.add_array("t.arr.bool", [True, False, True])
    writer.add_key_value("t.arr.u8", [1, 2, 255], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT8)
    writer.add_key_value("t.arr.u64", [2**64 - 1, 0], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.UINT64)
    writer.add_key_value("t.arr.f64", [1.5, -0.1], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT64)
    writer.add_array("t.arr.nested", [[1, 2], [3]])
    writer.add_array("t.arr.nested_str", [["x"], ["y", "z"]])
    writer.add_array("t.arr.long", list(range(100)))
    # Two small tensors after a 64-byte alignment: odd sizes force padding between them.
    writer.add_tensor("a", np.arange(5, dtype=np.float32))
    writer.add_tensor("b", np.arange(6, dtype=np.float16).reshape(2, 3))
    finish(writer)


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf LlamaModel.permute, verbatim (numpy instead of torch)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def llama3_rope_factors(head_dim, base, factor, low_freq_factor, high_freq_factor, old_context_len):
    """convert_hf_to_gguf LlamaModel.generate_extra_tensors, "llama3" branch (float32 freqs)."""
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    rope_factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / float(freq)
        if wavelen < high_freq_wavelen:
            rope_factors.append(1)
        elif wavelen > low_freq_wavelen:
            rope_factors.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            rope_factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(rope_factors, dtype=np.float32)


def model(out_dir, arch):
    """A 2-layer model: llama (hidden 256, 2 heads, 1 kv head, head_dim 128, untied, llama3 RoPE
    in rope_freqs) or qwen2 (hidden 128, 4 heads, 2 kv heads, q/k/v biases, tied)."""
    rng = np.random.default_rng(7)
    llama = arch == "llama"
    hidden, heads, kv_heads, ff, vocab = (256, 2, 1, 320, 64) if llama else (128, 4, 2, 192, 48)
    head_dim = hidden // heads
    writer = gguf.GGUFWriter(os.path.join(out_dir, "model.gguf"), arch)
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_block_count(2)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(500000.0 if llama else 1000000.0)
    writer.add_layer_norm_rms_eps(1e-5 if llama else 1e-6)
    writer.add_rope_dimension_count(head_dim)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    writer.add_token_types([3 if i < 2 else 1 for i in range(vocab)])
    writer.add_token_merges(["t o", "to k"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template("{{ messages }}")
    writer.add_file_type(7)

    hf = {}

    def put(hf_name, gguf_name, w, qtype=T.F32, n_perm=None):
        """Stores w (HF layout) under gguf_name; expected value = what a faithful loader returns."""
        stored = permute(w, heads, n_perm) if (llama and n_perm is not None) else w
        if qtype == T.F32:
            writer.add_tensor(gguf_name, stored)
            hf[hf_name] = w
        else:
            q = gguf.quants.quantize(stored, qtype)
            writer.add_tensor(gguf_name, q, raw_dtype=qtype)
            # Rows quantize independently, so dequantize(quantize(W)) is the un-permuted answer.
            hf[hf_name] = gguf.quants.dequantize(gguf.quants.quantize(w, qtype), qtype)

    def rand(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    put("model.embed_tokens.weight", "token_embd.weight", rand(vocab, hidden), T.Q8_0)
    if llama:
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(head_dim, 500000.0, 8.0, 1.0, 4.0, 8192))
    for i in range(2):
        p, g = f"model.layers.{i}.", f"blk.{i}."
        put(p + "input_layernorm.weight", g + "attn_norm.weight", rand(hidden))
        # Layer 0 keeps Q/K in F32 (exact round trip of the permutation); layer 1 quantizes them.
        qk_type = T.F32 if i == 0 else T.Q8_0
        put(p + "self_attn.q_proj.weight", g + "attn_q.weight", rand(heads * head_dim, hidden), qk_type, heads)
        put(p + "self_attn.k_proj.weight", g + "attn_k.weight", rand(kv_heads * head_dim, hidden), qk_type, kv_heads)
        put(p + "self_attn.v_proj.weight", g + "attn_v.weight", rand(kv_heads * head_dim, hidden), T.Q4_1)
        put(p + "self_attn.o_proj.weight", g + "attn_output.weight", rand(hidden, heads * head_dim), T.Q5_0)
        if not llama:
            put(p + "self_attn.q_proj.bias", g + "attn_q.bias", rand(heads * head_dim))
            put(p + "self_attn.k_proj.bias", g + "attn_k.bias", rand(kv_heads * head_dim))
            put(p + "self_attn.v_proj.bias", g + "attn_v.bias", rand(kv_heads * head_dim))
        put(p + "post_attention_layernorm.weight", g + "ffn_norm.weight", rand(hidden))
        put(p + "mlp.gate_proj.weight", g + "ffn_gate.weight", rand(ff, hidden), T.Q4_0)
        put(p + "mlp.up_proj.weight", g + "ffn_up.weight", rand(ff, hidden), T.Q8_0)
        put(p + "mlp.down_proj.weight", g + "ffn_down.weight", rand(hidden, ff), T.Q5_1)
    put("model.norm.weight", "output_norm.weight", rand(hidden))
    if llama:
        put("lm_head.weight", "output.weight", rand(vocab, hidden), T.Q8_0)
    finish(writer)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in hf.items()},
              os.path.join(out_dir, "expected.safetensors"))


def dequantize(path, out):
    reader = gguf.GGUFReader(path)
    expected = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = [int(d) for d in reversed(t.shape)]
        expected[t.name] = np.ascontiguousarray(values, dtype=np.float32).reshape(shape)
    save_file(expected, out)


def quantize(in_path, row_length, out_dir, *type_names):
    """gguf-py's own encoders (numpy ports of ggml's reference quantizers), so qdist's are checked
    against a second implementation that shares no code with either."""
    rows = np.fromfile(in_path, dtype="<f4").reshape(-1, int(row_length))
    for name in type_names:
        encoded = gguf.quants.quantize(rows, T[name])
        np.ascontiguousarray(encoded).view(np.uint8).tofile(os.path.join(out_dir, name + ".bin"))


def finish(writer):
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"types": types, "metadata": metadata, "model": model, "dequantize": dequantize,
     "quantize": quantize}[command](*args)
