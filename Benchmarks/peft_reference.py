#!/usr/bin/env python3
"""qdist's PEFT LoRA adapters against PEFT itself, both ways, on a real model folder.

1. qdist writes a seeded random adapter (non-zero B: `qdist random-adapter`); PEFT loads it with
   `PeftModel.from_pretrained`; the first window's logits of `qdist eval --adapter --no-nf4
   --dump-logits` are compared with PEFT's.
2. PEFT writes an adapter (`get_peft_model` + random B + `save_pretrained`); qdist evaluates with
   it; logits compared again (so qdist's strict reader accepts what PEFT writes).
3. `qdist merge-adapter` writes a merged folder; transformers loads it without PEFT; its logits
   and its weights are compared with PEFT's `merge_and_unload()`.

Not run in CI (torch is heavy). Set up once:
    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch transformers peft safetensors numpy
Run (qdist built with `swift build`):
    /tmp/torchvenv/bin/python Benchmarks/peft_reference.py --qdist .build/debug/qdist \
        --model ~/.cache/qdist/smollm2-135m-instruct --data ../shared/data/wikitext-2/test.txt
Prints one JSON object (max |logit difference| per check, and how far the adapter moves the logits).
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def qdist_logits(args, adapter, work, name):
    """The first window's logits (seq_len - 1, vocab) from `qdist eval --adapter --no-nf4`."""
    out = os.path.join(work, name + ".f32")
    cmd = [args.qdist, "eval", "--model", args.model, "--data", args.data, "--seq-len", str(args.seq_len),
           "--windows", "1", "--dump-logits", out, "--json"]
    if adapter:
        cmd += ["--adapter", adapter, "--no-nf4"]
    subprocess.run(cmd, check=True, capture_output=True)
    return np.fromfile(out, dtype="<f4").reshape(args.seq_len - 1, -1).astype(np.float64)


def torch_logits(model, window):
    with torch.no_grad():
        return model(window).logits[0, :-1].double().numpy()


def load_base(path):
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdist", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = tempfile.mkdtemp(prefix="peft-reference-")
    report = {"model": args.model, "seq_len": args.seq_len, "rank": args.rank, "alpha": args.alpha}

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ids = tokenizer(open(args.data, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
    window = torch.tensor([ids[:args.seq_len]])
    base_logits = torch_logits(load_base(args.model), window)
    report["base_vs_qdist_base"] = float(np.abs(qdist_logits(args, None, work, "base") - base_logits).max())

    # 1. qdist writes, PEFT reads.
    ours = os.path.join(work, "qdist-adapter")
    subprocess.run([args.qdist, "random-adapter", "--model", args.model, "--output", ours, "--rank", str(args.rank),
                    "--alpha", str(args.alpha), "--seed", "7", "--b-scale", "0.05"], check=True)
    peft_model = PeftModel.from_pretrained(load_base(args.model), ours).eval()
    peft_logits = torch_logits(peft_model, window)
    report["qdist_adapter"] = {
        "peft_vs_qdist_max_abs_diff": float(np.abs(qdist_logits(args, ours, work, "ours") - peft_logits).max()),
        "adapter_moves_logits_by": float(np.abs(peft_logits - base_logits).max()),
        "logits_max_abs": float(np.abs(peft_logits).max()),
    }

    # 3. qdist merges; transformers loads the merged folder; PEFT's merge_and_unload agrees.
    merged = os.path.join(work, "merged")
    subprocess.run([args.qdist, "merge-adapter", "--model", args.model, "--adapter", ours, "--output", merged],
                   check=True, capture_output=True)
    merged_logits = torch_logits(load_base(merged), window)
    peft_merged = {k: v.numpy() for k, v in peft_model.merge_and_unload().state_dict().items()}
    ours_merged = {}
    for f in sorted(os.listdir(merged)):
        if f.endswith(".safetensors"):
            ours_merged.update(load_file(os.path.join(merged, f)))
    weight_diff = max(float(np.abs(ours_merged[k].astype(np.float64) - peft_merged[k]).max()) for k in ours_merged)
    report["merged_folder"] = {
        "transformers_merged_vs_peft_max_abs_diff": float(np.abs(merged_logits - peft_logits).max()),
        "weights_vs_peft_merge_and_unload_max_abs_diff": weight_diff,
        "tensors": len(ours_merged),
    }

    # 2. PEFT writes, qdist reads.
    theirs = os.path.join(work, "peft-adapter")
    config = LoraConfig(r=args.rank, lora_alpha=int(args.alpha), target_modules=["q_proj", "v_proj", "down_proj"],
                        task_type="CAUSAL_LM", use_rslora=True)
    trained = get_peft_model(load_base(args.model), config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.rand(p.shape, generator=generator) * 0.1 - 0.05)
    trained.save_pretrained(theirs)
    their_logits = torch_logits(trained.eval(), window)
    report["peft_adapter"] = {
        "peft_vs_qdist_max_abs_diff": float(np.abs(qdist_logits(args, theirs, work, "theirs") - their_logits).max()),
        "adapter_moves_logits_by": float(np.abs(their_logits - base_logits).max()),
    }
    report["work_folder"] = work
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
