#!/usr/bin/env bash
# A long fuzz campaign over every reader (issue 12): N mutated inputs per reader, in chunks of
# 10,000 with consecutive seeds, each chunk in its own process so a trap names its seed and input.
#   bash Benchmarks/fuzz.sh N            (after `swift build --build-tests`; READERS="a b" for some)
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
driver=.build/debug/QDistFuzz
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
q=.build/debug/qdist
$q tiny-model "$work/tiny" --layers 1 --hidden 32 --heads 2 --kv-heads 1 --intermediate 64 >/dev/null
$q random-adapter --model "$work/tiny" --output "$work/adapter" --rank 2 >/dev/null
mkdir -p "$work/adapter/base" "$work/gguf" && cp "$work/tiny/config.json" "$work/adapter/base/"
.venv/bin/python3 Tests/Reference/gguf_reference.py model "$work/gguf" llama >/dev/null
printf 'recipe: {QuantizationModifier: {config_groups: {g: {targets: [Linear], weights: {num_bits: 4, symmetric: false, strategy: group, group_size: 16}}}}}\n' > "$work/rtn.yaml"
$q quantize --config "$work/rtn.yaml" --model "$work/tiny" --output "$work/q" >/dev/null 2>&1
readers=("safetensors $work/tiny/model.safetensors" "tokenizer $work/tiny/tokenizer.json" "gguf $work/gguf/model.gguf"
         "recipe Configs/quantize/smollm2-gptq-w4a16-asym.yaml" "finetune Configs/finetune/smollm2-qlora.yaml"
         "peft $work/adapter" "quantized $work/q")
chunk=10000
only=${READERS:-}  # e.g. READERS="tokenizer gguf" runs only those
for r in "${readers[@]}"; do
  set -- $r
  if [ -n "$only" ] && [[ " $only " != *" $1 "* ]]; then continue; fi
  done=0 crashes=0 errors=0 start=$(date +%s)
  for ((seed = 1; done < n; seed++)); do
    c=$(( n - done < chunk ? n - done : chunk ))
    out=$(timeout 3600 "$driver" "$1" "$2" "$c" "$seed" "$work/progress" 2>"$work/err")
    status=$?
    if [ $status -ne 0 ]; then
      crashes=$((crashes + 1))
      echo "fuzz: $1 seed $seed died (status $status) near input $(cat "$work/progress"): $(tail -c 300 "$work/err")"
    else
      errors=$(( errors + $(sed -E 's/.*"errors": ([0-9]+).*/\1/' <<<"$out") ))
    fi
    done=$((done + c))
  done
  echo "fuzz: $1 $done inputs, $errors typed errors, $crashes crashes, $(( $(date +%s) - start )) s"
done
