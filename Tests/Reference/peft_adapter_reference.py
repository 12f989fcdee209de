#!/usr/bin/env python3
"""Checks a PEFT LoRA adapter folder written by qdist with the reference `safetensors` package
and numpy (FORMATS.md §8), and recomputes one merged weight in float64.

    peft_adapter_reference.py ADAPTER_DIR BASE_MODEL_DIR MERGED_MODEL_DIR LAYERS

Checks: adapter_config.json is exactly json.dumps(indent=2, sort_keys=True) of itself (PEFT's
writer); adapter_model.safetensors has metadata {"format": "pt"}, exactly the tensors
base_model.model.model.layers.N.<module>.lora_{A,B}.weight for every layer and target module,
F32, A [r, in] and B [out, r] with in/out from the base model's config.json; and the merged
folder's weight of every adapted linear of layer 1 equals W + scaling * B @ A (float64) to
1e-6. Prints OK, or the first failure, and exits 1.
"""
import glob
import json
import math
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def load_folder(folder):
    weights = {}
    for path in sorted(glob.glob(f"{folder}/*.safetensors")):
        weights.update(load_file(path))
    return weights


def main():
    adapter, base, merged, layers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    text = open(f"{adapter}/adapter_config.json", encoding="utf-8").read()
    cfg = json.loads(text)
    assert text == json.dumps(cfg, indent=2, sort_keys=True), "adapter_config.json is not json.dumps(indent=2, sort_keys=True)"
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["bias"] == "none", cfg
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scaling = alpha / math.sqrt(r) if cfg["use_rslora"] else alpha / r

    model = json.load(open(f"{base}/config.json"))
    h, i = model["hidden_size"], model["intermediate_size"]
    head_dim = model.get("head_dim") or h // model["num_attention_heads"]
    q, kv = model["num_attention_heads"] * head_dim, model["num_key_value_heads"] * head_dim
    features = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    expected = {}
    for n in range(layers):
        for m in cfg["target_modules"]:
            prefix = f"base_model.model.model.layers.{n}.{MODULES[m]}.{m}"
            expected[f"{prefix}.lora_A.weight"] = [r, features[m][0]]
            expected[f"{prefix}.lora_B.weight"] = [features[m][1], r]

    with safe_open(f"{adapter}/adapter_model.safetensors", "np") as f:
        assert f.metadata() == {"format": "pt"}, f.metadata()
        assert sorted(f.keys()) == sorted(expected), (sorted(f.keys()), sorted(expected))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for k, shape in expected.items():
        assert tensors[k].dtype == np.float32, (k, tensors[k].dtype)
        assert list(tensors[k].shape) == shape, (k, tensors[k].shape, shape)

    base_weights, merged_weights = load_folder(base), load_folder(merged)
    assert sorted(base_weights) == sorted(merged_weights), "the merged folder holds other tensors than the base"
    for m in cfg["target_modules"]:
        name = f"model.layers.1.{MODULES[m]}.{m}.weight"
        a = tensors[f"base_model.model.{name[:-len('.weight')]}.lora_A.weight"].astype(np.float64)
        b = tensors[f"base_model.model.{name[:-len('.weight')]}.lora_B.weight"].astype(np.float64)
        want = base_weights[name].astype(np.float64) + scaling * (b @ a)
        diff = np.abs(merged_weights[name].astype(np.float64) - want).max()
        assert diff <= 1e-6, (name, diff)
        assert np.abs(scaling * (b @ a)).max() > 1e-3, (name, "the adapter should change the weight")
    untouched = "model.layers.1.input_layernorm.weight"
    assert np.array_equal(base_weights[untouched], merged_weights[untouched])
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
