#!/usr/bin/env python3
"""Loads qdist's W8A8 outputs (compressed-tensors int-quantized, static or dynamic input
activations) in transformers + compressed-tensors and compares their perplexity with
`qdist eval` on the same windows — the check that our folders mean to PyTorch what they mean
to us (codes, scales, input_scale, and the activation fake-quant at inference).

Not run in CI (torch is heavy). Needs a venv with torch, transformers and compressed-tensors:
    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch transformers compressed-tensors
Run from the repository root, after `swift build -c release`:
    /tmp/torchvenv/bin/python Benchmarks/compressed_tensors_w8a8_check.py \
        --qdist .build/release/qdist --data ../shared/data/wikitext-2/test.txt --windows 4 \
        FOLDER [FOLDER …]
Prints one JSON object: per folder, the quantization format and activation scheme, the
transformers and qdist perplexities and their relative difference.
"""
import argparse
import json
import math
import subprocess
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def input_quantization_active(model):
    """transformers loads an int-quantized folder compressed (int8 `weight`, `weight_scale`,
    `input_scale`) and, at the first forward, decompresses it with compressed-tensors, whose
    quantized forward then quantize-dequantizes each linear's input (static `input_scale` or
    dynamic per token). Run that first forward, then show the input quantization acts: a
    linear's output changes when `quantization_enabled` is switched off."""
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
    linear = model.model.layers[0].mlp.down_proj
    if getattr(linear, "quantization_scheme", None) is None:
        return False
    x = torch.randn(1, 8, linear.in_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        quantized = linear(x)
        linear.quantization_enabled = False
        plain = linear(x)
        linear.quantization_enabled = True
    return bool((quantized - plain).abs().max() > 0)


def transformers_ppl(folder, data, seq_len, windows, threads):
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    active = input_quantization_active(model)
    model.eval()
    ids = tokenizer(open(data, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
    n = min(len(ids) // seq_len, windows)
    nll, count = 0.0, 0
    start = time.time()
    with torch.no_grad():
        for w in range(n):
            window = torch.tensor([ids[w * seq_len:(w + 1) * seq_len]])
            logits = model(window).logits[0].double()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= logp.gather(1, window[0, 1:, None]).sum().item()
            count += seq_len - 1
    linear = model.model.layers[0].mlp.down_proj
    scheme = getattr(linear, "quantization_scheme", None)
    return {"ppl": math.exp(nll / count), "windows": n, "linear_class": type(linear).__name__, "seconds": time.time() - start, "input_quantization_active": active,
            "quantization_status": str(getattr(model.model.layers[0].mlp.down_proj, "quantization_status", None)),
            "input_activations": scheme.input_activations.model_dump(mode="json") if scheme is not None and scheme.input_activations else None,
            "input_scale_layer0_down_proj": float(linear.input_scale) if hasattr(linear, "input_scale") else None}


def qdist_ppl(qdist, folder, data, seq_len, windows):
    out = subprocess.run([qdist, "eval", "--model", folder, "--data", data, "--seq-len", str(seq_len),
                          "--windows", str(windows), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["ppl"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--qdist", default=".build/release/qdist")
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import compressed_tensors
    import transformers
    report = {"torch": torch.__version__, "transformers": transformers.__version__,
              "compressed_tensors": compressed_tensors.__version__, "windows": args.windows, "seq_len": args.seq_len,
              "folders": {}}
    for folder in args.folders:
        qc = json.load(open(f"{folder}/config.json")).get("quantization_config")
        t = transformers_ppl(folder, args.data, args.seq_len, args.windows, args.threads)
        q = qdist_ppl(args.qdist, folder, args.data, args.seq_len, args.windows)
        report["folders"][folder] = {
            "format": qc.get("format", qc.get("quant_method")) if qc else None,
            "transformers": t, "qdist_ppl": q, "relative_difference": abs(q - t["ppl"]) / t["ppl"],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
