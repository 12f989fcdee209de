#!/usr/bin/env python3
"""Perplexity, logits and speed of a Hugging Face folder in transformers (PyTorch, CPU), by
qdist's eval protocol, to compare with `qdist eval` on the same folder and machine.

Not run in CI (torch is heavy). Set up once:
    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch transformers safetensors numpy
Run:
    /tmp/torchvenv/bin/python Benchmarks/transformers_reference.py --model DIR \
        --data ../shared/data/wikitext-2/test.txt --windows 40 [--threads 2] \
        [--compare-logits FILE.f32]    # first window's logits written by `qdist eval --dump-logits`
Prints one JSON object.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--windows", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare-logits")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    model.eval()
    text = open(args.data, encoding="utf-8").read()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = len(ids) // args.seq_len
    if args.windows:
        n = min(n, args.windows)

    report = {"file_tokens": len(ids), "windows": n, "seq_len": args.seq_len, "threads": args.threads,
              "torch": torch.__version__}
    nll, count = 0.0, 0
    start = time.time()
    with torch.no_grad():
        for w in range(n):
            window = torch.tensor([ids[w * args.seq_len:(w + 1) * args.seq_len]])
            logits = model(window).logits[0].double()
            if w == 0 and args.compare_logits:
                ours = np.fromfile(args.compare_logits, dtype="<f4").reshape(logits.shape[0] - 1, -1)
                theirs = logits[:-1].numpy()
                report["logits_max_abs_diff"] = float(np.abs(ours - theirs).max())
                report["logits_max_abs"] = float(np.abs(theirs).max())
            logp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= logp.gather(1, window[0, 1:, None]).sum().item()
            count += args.seq_len - 1
    seconds = time.time() - start
    report.update({"ppl": math.exp(nll / count), "mean_nll": nll / count, "seconds": seconds,
                   "tokens_per_s": n * args.seq_len / seconds})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
