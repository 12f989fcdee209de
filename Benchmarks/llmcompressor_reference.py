#!/usr/bin/env python3
"""Reference run of llm-compressor 0.14 (`oneshot`) on SmolLM2-135M-Instruct on CPU, for
comparison with `qdist quantize` (same model, same calibration protocol, same evaluation).

Usage:
    python Benchmarks/llmcompressor_reference.py \
        --recipe {w8a8-static,sq-w8a8-static,sq-w8a8-dynamic,awq-w4a16-asym,awq-gptq-w4a16-asym,gptq-w4a16-asym,fp8,fp8-dynamic,
                  sparsegpt-50,sparsegpt-2of4,wanda-2of4,sparsegpt-2of4-rtn-w4a16,sparsegpt-2of4-gptq-w4a16} \
        --samples N --seq-len 512 --out DIR [--threads 2] [--qdist BIN] [--torch-eval]

Virtual environment (CPU-only torch; PyPI's torch is a CUDA build, so install the CPU wheel
by path first, then llm-compressor, which keeps that torch):
    python3 -m venv /root/.cache/qdist/llmc-venv
    /root/.cache/qdist/llmc-venv/bin/pip install --upgrade pip
    /root/.cache/qdist/llmc-venv/bin/pip install /opt/wheels/torch-*.whl      # torch 2.13.0+cpu
    /root/.cache/qdist/llmc-venv/bin/pip install "llmcompressor==0.14.*"     # 0.14.0.1
    # (pulled compressed-tensors 0.19.0, transformers 5.17.0; torch stayed +cpu)

Protocol:
  * torch.set_num_threads(--threads) (default 2); model loaded in float32 on CPU from
    /root/.cache/qdist/smollm2-135m-instruct.
  * Calibration: wikitext-2 valid.txt read whole as UTF-8, tokenized once with tokenizer.json,
    no special tokens (no BOS). random.seed(0); for each of N windows
    start = random.randint(0, len(tokens) - seq_len); window = tokens[start:start+seq_len].
    Passed to oneshot as a pre-tokenized Dataset (batch_size=1, no shuffling, in draw order).
  * Recipes (all: targets Linear, ignore lm_head; llm-compressor defaults otherwise; the
    default `pipeline` ("independent") gives every calibrated modifier its own sequential
    pass, data-free for weight-only QuantizationModifier):
      w8a8-static         QuantizationModifier: W int8 sym per-channel (memoryless minmax),
                          A int8 sym per-tensor static, observer "minmax" (llm-compressor's
                          moving-average min/max, averaging_constant 0.01)
      sq-w8a8-static      SmoothQuantModifier(smoothing_strength=0.5) + the above
      sq-w8a8-dynamic     SmoothQuantModifier(0.5) + W int8 sym per-channel,
                          A int8 sym per-token dynamic (preset "W8A8")
      awq-w4a16-asym      AWQModifier() (duo_scaling=True, n_grid=20) + QuantizationModifier
                          W int4 asym group 64
      awq-gptq-w4a16-asym AWQModifier() + GPTQModifier W int4 asym group 64 (block 128,
                          dampening 0.01, actorder "static" = defaults)
      gptq-w4a16-asym     GPTQModifier W int4 asym group 64 (defaults as above)
      fp8, fp8-dynamic    QuantizationModifier with compressed-tensors' presets "FP8" (static
                          per-tensor E4M3 weights and inputs) and "FP8_DYNAMIC" (per-channel
                          weights, dynamic per-token inputs)
      sparsegpt-50        SparseGPTModifier(sparsity=0.5) (unstructured; block 128, dampening 0.01)
      sparsegpt-2of4      SparseGPTModifier(sparsity=0.5, mask_structure="2:4")
      wanda-2of4          WandaPruningModifier(sparsity=0.5, mask_structure="2:4")
      sparsegpt-2of4-rtn-w4a16   SparseGPT 2:4, then QuantizationModifier W int4 asym group 64
      sparsegpt-2of4-gptq-w4a16  SparseGPT 2:4, then GPTQModifier W int4 asym group 64 (0.13+
                          GPTQ does not keep the mask: the result is no longer 2:4)
                          Pruners ignore "re:.*lm_head": with targets ["Linear"] the plain name
                          "lm_head" matches nothing (FORMATS.md §12.6 item 8). Pruned models are
                          saved dense (llm-compressor 0.14 writes no sparse format); use
                          --torch-eval when qdist eval cannot read the folder's config.
  * `seconds` = wall time of the oneshot() call alone (no loading, no saving; `cpu_seconds` =
    process CPU time over the same span, all threads, useful on a shared machine); then
    model.save_pretrained(--out, save_compressed=True) + tokenizer.
  * Evaluation: `<qdist> eval --model OUT --data test.txt --windows 40 --seq-len 512 --json`
    (first 40 non-overlapping 512-token windows of test.txt tokenized whole without BOS,
    ppl = exp(mean NLL over the 511 predicted tokens per window)). --torch-eval additionally
    scores the in-memory llm-compressor model (fake-quantized) with the same windows in torch.
Prints JSON lines: {recipe, samples, seconds, out} then {..., ppl, ppl_source}.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

MODEL = "/root/.cache/qdist/smollm2-135m-instruct"
VALID = "/work/shared/data/wikitext-2/valid.txt"
TEST = "/work/shared/data/wikitext-2/test.txt"
QDIST = "/root/.cache/qdist/qdist-ref-bin/qdist"
RECIPES = ["w8a8-static", "sq-w8a8-static", "sq-w8a8-dynamic",
           "awq-w4a16-asym", "awq-gptq-w4a16-asym", "gptq-w4a16-asym", "fp8", "fp8-dynamic",
           "sparsegpt-50", "sparsegpt-2of4", "wanda-2of4", "sparsegpt-2of4-rtn-w4a16", "sparsegpt-2of4-gptq-w4a16"]


def tokenize_file(path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return tok.encode(text, add_special_tokens=False).ids


def calibration_windows(n, seq_len, seed=0):
    tokens = tokenize_file(VALID)
    random.seed(seed)
    out = []
    for _ in range(n):
        s = random.randint(0, len(tokens) - seq_len)
        out.append(tokens[s:s + seq_len])
    return out


def build_recipe(name):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.gptq import GPTQModifier
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform import AWQModifier, SmoothQuantModifier

    w8 = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="channel")
    a8_static = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="tensor",
                                 dynamic=False, observer="minmax")
    a8_dynamic = QuantizationArgs(num_bits=8, type="int", symmetric=True, strategy="token",
                                  dynamic=True)
    w4 = QuantizationArgs(num_bits=4, type="int", symmetric=False, strategy="group",
                          group_size=64)

    def groups(weights, acts=None):
        return {"group_0": QuantizationScheme(targets=["Linear"], weights=weights,
                                              input_activations=acts)}

    ignore = ["lm_head"]
    if name == "w8a8-static":
        return [QuantizationModifier(config_groups=groups(w8, a8_static), ignore=ignore)]
    if name == "sq-w8a8-static":
        return [SmoothQuantModifier(smoothing_strength=0.5),
                QuantizationModifier(config_groups=groups(w8, a8_static), ignore=ignore)]
    if name == "sq-w8a8-dynamic":
        return [SmoothQuantModifier(smoothing_strength=0.5),
                QuantizationModifier(config_groups=groups(w8, a8_dynamic), ignore=ignore)]
    if name == "awq-w4a16-asym":
        return [AWQModifier(),
                QuantizationModifier(config_groups=groups(w4), ignore=ignore)]
    if name == "awq-gptq-w4a16-asym":
        return [AWQModifier(), GPTQModifier(config_groups=groups(w4), ignore=ignore)]
    if name == "gptq-w4a16-asym":
        return [GPTQModifier(config_groups=groups(w4), ignore=ignore)]
    if name == "fp8":
        return [QuantizationModifier(targets=["Linear"], scheme="FP8", ignore=ignore)]
    if name == "fp8-dynamic":
        return [QuantizationModifier(targets=["Linear"], scheme="FP8_DYNAMIC", ignore=ignore)]
    if name.startswith("sparsegpt") or name.startswith("wanda"):
        from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
        prune_ignore = ["re:.*lm_head"]
        structure = "0:0" if name == "sparsegpt-50" else "2:4"
        if name.startswith("wanda"):
            pruner = WandaPruningModifier(sparsity=0.5, mask_structure=structure, targets=["Linear"], ignore=prune_ignore)
        else:
            pruner = SparseGPTModifier(sparsity=0.5, mask_structure=structure, block_size=128, dampening_frac=0.01,
                                       targets=["Linear"], ignore=prune_ignore)
        if name.endswith("rtn-w4a16"):
            return [pruner, QuantizationModifier(config_groups=groups(w4), ignore=ignore)]
        if name.endswith("gptq-w4a16"):
            return [pruner, GPTQModifier(config_groups=groups(w4), ignore=ignore)]
        return [pruner]
    raise ValueError(name)


def torch_ppl(model, seq_len, windows=40):
    import torch
    tokens = tokenize_file(TEST)
    nll, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for w in range(min(windows, len(tokens) // seq_len)):
            ids = torch.tensor([tokens[w * seq_len:(w + 1) * seq_len]])
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            count += seq_len - 1
    return math.exp(nll / count)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", required=True, choices=RECIPES)
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--qdist", default=QDIST)
    ap.add_argument("--torch-eval", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="random.seed of the window draw (qdist: --seed with sampler python_random)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not torch.cuda.is_available():
        # Guard against DataLoader/offload code pinning host memory without an accelerator.
        torch.Tensor.pin_memory = lambda self, *a, **k: self

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from llmcompressor import oneshot

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    wins = calibration_windows(args.samples, args.seq_len, args.seed)
    ds = Dataset.from_dict({"input_ids": wins,
                            "attention_mask": [[1] * len(w) for w in wins]})
    recipe = build_recipe(args.recipe)

    t0, c0 = time.perf_counter(), time.process_time()
    oneshot(model=model, processor=tokenizer, dataset=ds, recipe=recipe,
            num_calibration_samples=args.samples, max_seq_length=args.seq_len,
            shuffle_calibration_samples=False, batch_size=1)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0

    result = {"recipe": args.recipe, "samples": args.samples, "seconds": round(seconds, 2),
              "out": os.path.abspath(args.out), "cpu_seconds": round(cpu_seconds, 1)}
    print(json.dumps(result), flush=True)

    if args.torch_eval:
        result["torch_ppl_inmemory"] = torch_ppl(model, args.seq_len)

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, save_compressed=True)
    tokenizer.save_pretrained(args.out)

    try:
        p = subprocess.run([args.qdist, "eval", "--model", args.out, "--data", TEST,
                            "--windows", "40", "--seq-len", str(args.seq_len), "--json"],
                           capture_output=True, text=True, check=True)
        ev = json.loads(p.stdout)
        result.update(ppl=ev["ppl"], ppl_source="qdist eval test.txt 40x512",
                      eval_seconds=round(ev.get("seconds", float("nan")), 1))
    except Exception as e:  # noqa: BLE001
        err = getattr(e, "stderr", "") or str(e)
        result.update(ppl=result.get("torch_ppl_inmemory"),
                      ppl_source="torch in-memory (qdist eval failed)" if args.torch_eval
                      else None, qdist_error=err.strip()[-500:])
    print(json.dumps(result), flush=True)
    with open(os.path.join(args.out, "llmc_reference_result.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
