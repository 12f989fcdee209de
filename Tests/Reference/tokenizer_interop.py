#!/usr/bin/env python3
"""Python `tokenizers` side of TokenizerInteropTests (run by `swift test`, in CI).

Needs the repository's .venv (Launch/setup-debian.sh installs `tokenizers` there).

    python tokenizer_interop.py train CORPUS.json OUT_DIR
        Trains a small byte-level BPE on the texts in CORPUS.json (a JSON list of strings) and
        writes OUT_DIR/trained.json: the vocabulary in id order and the merges as "left right"
        strings, the way a GGUF file stores them. Also writes OUT_DIR/flags/tokenizer.json: the
        trained tokenizer re-serialized by `tokenizers` with an NFC normalizer, a
        Digits + ByteLevel(add_prefix_space) pre-tokenizer, a BOS/EOS template and added tokens
        using lstrip / rstrip / single_word / normalized.

    python tokenizer_interop.py encode REQUEST.json RESPONSE.json
        REQUEST: {"tokenizers": [path, ...], "texts": [str, ...], "id_lists": [[int, ...], ...]}.
        For each tokenizer.json, writes the ids of every text (without and with special tokens),
        the decode of those ids (keeping and skipping special tokens), and the decode of every
        id list.
"""
import json
import os
import sys

try:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
except ImportError as error:  # the test prints this line
    sys.exit(f"the Python reference environment lacks `tokenizers` ({error}): run `bash Launch/setup-debian.sh`")


def train(corpus_path, out_dir):
    texts = json.load(open(corpus_path, encoding="utf-8"))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=900, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    assert [i for _, i in vocab] == list(range(len(vocab))), "trained ids are not dense"
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "trained.json"), "w", encoding="utf-8") as f:
        json.dump({"tokens": [t for t, _ in vocab], "merges": merges, "specials": specials}, f)

    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False),
                    AddedToken("[X]", single_word=True, normalized=False),
                    AddedToken("ﬁx", normalized=True),
                    AddedToken("e\u0301t\u00e9", normalized=True)])
    bos, eos = tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|im_start|> $A <|im_end|>", pair="<|im_start|> $A $B:1 <|im_end|>:1",
                                      special_tokens=[("<|im_start|>", bos), ("<|im_end|>", eos)]),
    ])
    os.makedirs(os.path.join(out_dir, "flags"), exist_ok=True)
    tok.save(os.path.join(out_dir, "flags", "tokenizer.json"))


def encode(request_path, response_path):
    request = json.load(open(request_path, encoding="utf-8"))
    results = []
    for path in request["tokenizers"]:
        tok = Tokenizer.from_file(path)
        ids = [tok.encode(t, add_special_tokens=False).ids for t in request["texts"]]
        results.append({
            "ids": ids,
            "ids_with_special_tokens": [tok.encode(t, add_special_tokens=True).ids for t in request["texts"]],
            "decoded": [tok.decode(i, skip_special_tokens=False) for i in ids],
            "decoded_skipping_special": [tok.decode(i, skip_special_tokens=True) for i in ids],
            "id_lists_decoded": [tok.decode(i, skip_special_tokens=False) for i in request["id_lists"]],
            "id_lists_decoded_skipping_special": [tok.decode(i, skip_special_tokens=True) for i in request["id_lists"]],
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        })
    with open(response_path, "w", encoding="utf-8") as f:
        json.dump({"results": results}, f, ensure_ascii=True)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("train", "encode"):
        sys.exit(__doc__)
    (train if sys.argv[1] == "train" else encode)(sys.argv[2], sys.argv[3])
