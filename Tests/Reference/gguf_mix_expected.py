#!/usr/bin/env python3
"""Expected per-tensor types of llama.cpp's quantization mixes, for Tests/QDistIOTests/GGUFMixTests.

`llama-quantize --dry-run MODEL MIX` prints the ggml type it picks for every tensor without
writing anything; this script runs it for every mix qdist offers (GGUFMix.swift), with and
without an importance matrix and with the override flags, on three models, and writes what it
printed as a JSON fixture. The Swift test replays the same tensor lists through `GGUFMix` and
must agree on every tensor; CI has no llama.cpp, so the fixture is the reference.

Models:
  smollm2-135m  the real SmolLM2-135M-Instruct F32 GGUF made by convert_hf_to_gguf.py (30 layers,
                hidden 576, ff 1536, 9/3 heads, tied embeddings). Rows of 576 and 1536 are not
                multiples of 256, so the k-quant fallbacks (Q4_K -> Q5_0, Q6_K -> Q8_0, ...) show.
                Its layers are stored in string order (blk.0, blk.1, blk.10, ...), which llama.cpp
                re-sorts numerically before counting layers.
  tiny-untied   written here with gguf-py: 8 layers, hidden 512, ff 1024, 8/2 heads (n_gqa 4),
                vocab 512, F32, an untied output.weight; rows are multiples of 256. Layers are
                stored last to first and the tensors of a layer in Hugging Face order.
  llama-70b-shape  written here: 80 layers with 2/1 heads, which makes llama.cpp call it
                LLM_TYPE_70B (the attn_v bump), hidden 256, ff 256, vocab 256, F16 weights (to
                keep the temporary file at 63 MB), untied. Only the k-quant mixes and Q4_0, no imatrix.
  odd-rows      written here: 2 layers, hidden 80, ff 96, 2/2 heads, vocab 64, tied. Rows of 80 are
                not even a multiple of 32, so llama.cpp's last resort (F16) shows; plain mixes only.

The imatrix is a GGUF imatrix (FORMATS.md §2.7) written here with gguf-py: ones for every
blk.* weight. Its values do not matter; llama.cpp's type choice only asks whether one is given.

Usage (from the repository root; needs the built llama.cpp and gguf-py with numpy):
    /work/main/.venv/bin/python Tests/Reference/gguf_mix_expected.py \\
        Tests/QDistIOTests/Fixtures/gguf_mix_expected.json \\
        [--smollm2 /tmp/conv/smollm2-f32.gguf] [--llama-bin DIR] [--work DIR]
Temporary model files go to --work (default: a fresh temporary directory, removed at the end).
"""
import argparse
import json
import os
import re
import subprocess
import tempfile

import numpy as np
import gguf

DEFAULT_BIN = "/root/.cache/qdist/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin"

# The mixes GGUFMix offers, in llama-quantize's spelling.
MIXES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L",
         "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "TQ1_0", "TQ2_0", "F16", "BF16", "F32"]
K_MIXES = ["Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K"]

# (mix, imatrix, extra flags) runs on top of the plain ones: the override options GGUFMix takes.
OVERRIDES = [
    ("Q4_K_M", False, {"pure": True}),
    ("Q3_K_M", True, {"pure": True}),
    ("Q4_K_M", False, {"output_type": "Q8_0"}),
    ("Q4_K_M", False, {"token_embedding_type": "Q8_0"}),
    ("Q5_K_M", False, {"output_type": "Q4_K", "token_embedding_type": "Q5_0"}),
    ("Q2_K", False, {"output_type": "Q5_K"}),
    ("Q5_K_S", False, {"leave_output": True}),
    ("Q6_K", False, {"leave_output": True, "pure": True}),
]

LINE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)\s+- \[([^\]]*)\], type =\s*(\S+), size =.*?(?:\((\w+)\))?\s*$")


def write_model(path, layers, hidden, ff, heads, kv_heads, vocab, dtype, layer_order, tied):
    """A llama-architecture GGUF with the hyper-parameters llama.cpp's loader requires, zero
    weights, tensors written in `layer_order`."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("qdist mix test model")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(1 if dtype == np.float16 else 0)
    kv_dim = hidden // heads * kv_heads

    def mat(rows, cols):  # numpy (rows, cols) = ggml ne [cols, rows]
        return np.zeros((rows, cols), dtype=dtype)

    w.add_tensor("token_embd.weight", mat(vocab, hidden))
    for i in layer_order:
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", mat(hidden, hidden))
        w.add_tensor(p + "attn_k.weight", mat(kv_dim, hidden))
        w.add_tensor(p + "attn_v.weight", mat(kv_dim, hidden))
        w.add_tensor(p + "attn_output.weight", mat(hidden, hidden))
        w.add_tensor(p + "ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(ff, hidden))
        w.add_tensor(p + "ffn_up.weight", mat(ff, hidden))
        w.add_tensor(p + "ffn_down.weight", mat(hidden, ff))
    w.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    if not tied:
        w.add_tensor("output.weight", mat(vocab, hidden))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tensor_list(path):
    """[(name, dims innermost first, type name)] in file order."""
    r = gguf.GGUFReader(path)
    return [(t.name, [int(d) for d in t.shape], t.tensor_type.name) for t in r.tensors]


def write_imatrix(path, tensors):
    """A GGUF imatrix (llama-imatrix's default format) with ones for every blk.* matrix."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["qdist-synthetic"])
    w.add_uint32("imatrix.chunk_count", 1)
    w.add_uint32("imatrix.chunk_size", 512)
    for name, dims, _ in sorted(tensors):
        if name.startswith("blk.") and name.endswith(".weight") and len(dims) >= 2 and dims[1] > 1:
            w.add_tensor(name + ".counts", np.ones((1, 1), dtype=np.float32))
            w.add_tensor(name + ".in_sum2", np.ones((1, dims[0]), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def dry_run(binary_dir, model, mix, imatrix_path, flags, n_tensors):
    """{tensor name: chosen type name} from one `llama-quantize --dry-run` run."""
    cmd = [os.path.join(binary_dir, "llama-quantize"), "--dry-run"]
    if flags.get("pure"):
        cmd.append("--pure")
    if flags.get("leave_output"):
        cmd.append("--leave-output-tensor")
    if "output_type" in flags:
        cmd += ["--output-tensor-type", flags["output_type"].lower()]
    if "token_embedding_type" in flags:
        cmd += ["--token-embedding-type", flags["token_embedding_type"].lower()]
    if imatrix_path:
        cmd += ["--imatrix", imatrix_path]
    cmd += [model, mix]
    env = dict(os.environ, LD_LIBRARY_PATH=binary_dir)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    chosen = {}
    for line in (run.stdout + run.stderr).splitlines():
        m = LINE.match(line)
        if m:
            name, current, new = m.group(3), m.group(5), m.group(6)
            chosen[name] = (new or current).upper()
    if len(chosen) != n_tensors:
        raise SystemExit(f"{' '.join(cmd)}: parsed {len(chosen)} tensor lines, expected {n_tensors}")
    return chosen, " ".join(cmd[1:])


def llama_version(binary_dir, model):
    """llama.cpp's build line ("version: 0.5.0-dev (build 1, commit ...)"), printed by every run."""
    env = dict(os.environ, LD_LIBRARY_PATH=binary_dir)
    out = subprocess.run([os.path.join(binary_dir, "llama-quantize"), "--dry-run", model, "F32"],
                         capture_output=True, text=True, env=env)
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("version:"):
            return line[len("version:"):].strip()
    return "unknown"


def cases_for(model_key):
    plain = K_MIXES + ["Q4_0"] if model_key == "llama-70b-shape" else MIXES
    runs = [(mix, False, {}) for mix in plain]
    if model_key in ("smollm2-135m", "tiny-untied"):
        runs += [(mix, True, {}) for mix in MIXES]
        runs += OVERRIDES
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--smollm2", default="/tmp/conv/smollm2-f32.gguf")
    ap.add_argument("--llama-bin", default=DEFAULT_BIN)
    ap.add_argument("--work")
    args = ap.parse_args()
    work = tempfile.TemporaryDirectory() if not args.work else None
    wdir = args.work or work.name

    tiny = os.path.join(wdir, "tiny-untied.gguf")
    write_model(tiny, 8, 512, 1024, 8, 2, 512, np.float32, list(reversed(range(8))), tied=False)
    big = os.path.join(wdir, "llama-70b-shape.gguf")
    write_model(big, 80, 256, 256, 2, 1, 256, np.float16, list(range(80)), tied=False)
    odd = os.path.join(wdir, "odd-rows.gguf")
    write_model(odd, 2, 80, 96, 2, 2, 64, np.float32, [0, 1], tied=True)
    models = [
        ("smollm2-135m", args.smollm2, 30, 9, 3),
        ("tiny-untied", tiny, 8, 8, 2),
        ("llama-70b-shape", big, 80, 2, 1),
        ("odd-rows", odd, 2, 2, 2),
    ]

    out_models = []
    for key, path, layers, heads, kv_heads in models:
        tensors = tensor_list(path)
        imatrix = os.path.join(wdir, key + ".imatrix.gguf")
        write_imatrix(imatrix, tensors)
        cases = []
        for mix, with_imatrix, flags in cases_for(key):
            chosen, command = dry_run(args.llama_bin, path, mix, imatrix if with_imatrix else None, flags, len(tensors))
            cases.append({
                "mix": mix, "imatrix": with_imatrix,
                "pure": bool(flags.get("pure")), "leave_output": bool(flags.get("leave_output")),
                "output_type": flags.get("output_type"), "token_embedding_type": flags.get("token_embedding_type"),
                "types": " ".join(chosen[name] for name, _, _ in tensors),
            })
        out_models.append({"name": key, "layers": layers, "heads": heads, "kv_heads": kv_heads,
                           "tensors": tensors, "cases": cases})
        print(f"{key}: {len(tensors)} tensors, {len(cases)} runs")

    # One JSON value per line for the long lists, so a diff shows which case changed.
    with open(args.out, "w") as f:
        f.write("{\n")
        f.write(f'"generator": "Tests/Reference/gguf_mix_expected.py",\n')
        f.write(f'"llama_cpp": {json.dumps("llama-quantize " + llama_version(args.llama_bin, tiny) + ", llama_cpp_python 0.3.36 vendor tree")},\n')
        f.write('"models": [\n')
        for mi, m in enumerate(out_models):
            f.write("{" + f'"name": {json.dumps(m["name"])}, "layers": {m["layers"]}, "heads": {m["heads"]}, "kv_heads": {m["kv_heads"]},\n')
            f.write('"tensors": [\n' + ",\n".join(json.dumps(t) for t in m["tensors"]) + "\n],\n")
            f.write('"cases": [\n' + ",\n".join(json.dumps(c) for c in m["cases"]) + "\n]\n")
            f.write("}" + (",\n" if mi + 1 < len(out_models) else "\n"))
        f.write("]\n}\n")
    if work:
        work.cleanup()


if __name__ == "__main__":
    main()
