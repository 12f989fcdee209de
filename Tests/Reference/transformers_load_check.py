#!/usr/bin/env python3
"""Loads a qdist output folder (or a base model plus a PEFT adapter) in today's Python stack —
transformers with compressed-tensors, bitsandbytes, peft — runs the first window of a text file and compares
its logits with those `qdist eval --dump-logits` wrote for the same window.

Used by the load test (Tests/QDistPipelineTests/CurrentStackLoadTests.swift), in the venv that
Launch/setup-load-test.sh makes (CPU torch from pip's find-links folder, pinned transformers,
compressed-tensors, peft). Prints one JSON object: versions, what was loaded (quantization
format and scheme), and the largest absolute logit difference next to the largest logit.

    python transformers_load_check.py --model DIR [--adapter DIR] --data FILE --seq-len N --logits FILE.f32
"""
import argparse
import json
import sys

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter")
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--logits", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import compressed_tensors
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = {"torch": torch.__version__, "transformers": transformers.__version__,
              "compressed_tensors": compressed_tensors.__version__}
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = getattr(model.config, "quantization_config", None)
    if config is not None:
        c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        report["quant_method"] = c.get("quant_method")
        report["format"] = c.get("format")
        with open(f"{args.model}/config.json", encoding="utf-8") as f:
            report["config_version"] = json.load(f)["quantization_config"].get("version")
    report["linear_class"] = type(model.model.layers[0].mlp.down_proj).__name__
    if args.adapter:
        import peft
        from peft import PeftModel
        report["peft"] = peft.__version__
        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()

    text = open(args.data, encoding="utf-8").read()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: args.seq_len - 1]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().numpy()
    ours = np.fromfile(args.logits, dtype="<f4").astype(np.float64).reshape(logits.shape[0], -1)
    if ours.shape != logits.shape:
        report["error"] = f"qdist logits {ours.shape}, transformers {logits.shape}"
    else:
        report["max_abs_diff"] = float(np.abs(ours - logits).max())
        report["max_abs_logit"] = float(np.abs(logits).max())
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
