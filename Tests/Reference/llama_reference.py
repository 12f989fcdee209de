#!/usr/bin/env python3
"""Float64 numpy reference of the Llama-family forward pass (Llama, Mistral, Qwen2).

An independent re-implementation of the equations in transformers' modeling_llama.py, used by
Tests/QDistModelTests to check qdist's logits. Usage:

    llama_reference.py MODEL_DIR TOKENS_CSV OUT.f64

writes the logits (tokens, vocab) as little-endian float64 to OUT.f64.
"""
import glob
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file


def inverse_frequencies(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    scaling = cfg.get("rope_scaling") or {}
    if scaling.get("rope_type", scaling.get("type")) == "llama3":
        factor = scaling.get("factor", 8.0)
        low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
        original = scaling.get("original_max_position_embeddings", 8192)
        out = []
        for f in inv:
            wavelength = 2 * math.pi / f
            if wavelength < original / high:
                out.append(f)
            elif wavelength > original / low:
                out.append(f / factor)
            else:
                smooth = (original / wavelength - low) / (high - low)
                out.append((1 - smooth) * f / factor + smooth * f)
        inv = np.array(out)
    return inv


def forward(folder, tokens):
    cfg = json.load(open(f"{folder}/config.json"))
    weights = {}
    for path in sorted(glob.glob(f"{folder}/*.safetensors")):
        weights.update({k: v.astype(np.float64) for k, v in load_file(path).items()})
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    eps = cfg["rms_norm_eps"]
    seq = len(tokens)

    inv = inverse_frequencies(cfg, head_dim)
    angles = np.arange(seq, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]

    def rope(t, n):
        t = t.reshape(seq, n, head_dim)
        a, b = t[..., : head_dim // 2], t[..., head_dim // 2 :]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def linear(x, name):
        y = x @ weights[name + ".weight"].T
        bias = weights.get(name + ".bias")
        return y + bias if bias is not None else y

    x = weights["model.embed_tokens.weight"][np.array(tokens)]
    mask = np.triu(np.full((seq, seq), -np.inf), 1)
    group = heads // kv_heads
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms(x, weights[p + "input_layernorm.weight"])
        q = rope(linear(h, p + "self_attn.q_proj"), heads)
        k = rope(linear(h, p + "self_attn.k_proj"), kv_heads)
        v = linear(h, p + "self_attn.v_proj").reshape(seq, kv_heads, head_dim)
        attended = np.zeros((seq, heads, head_dim))
        for head in range(heads):
            g = head // group
            scores = q[:, head] @ k[:, g].T / math.sqrt(head_dim) + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended[:, head] = scores @ v[:, g]
        x = x + linear(attended.reshape(seq, heads * head_dim), p + "self_attn.o_proj")
        h = rms(x, weights[p + "post_attention_layernorm.weight"])
        gate, up = linear(h, p + "mlp.gate_proj"), linear(h, p + "mlp.up_proj")
        x = x + linear(gate / (1 + np.exp(-gate)) * up, p + "mlp.down_proj")
    x = rms(x, weights["model.norm.weight"])
    head = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])
    return x @ head.T


if __name__ == "__main__":
    folder, tokens_csv, out = sys.argv[1:4]
    logits = forward(folder, [int(t) for t in tokens_csv.split(",")])
    logits.astype("<f8").tofile(out)
