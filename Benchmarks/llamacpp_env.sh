# Sourced by the llama.cpp comparisons (gguf_vs_llamacpp.sh, gguf_gptq_vs_llamacpp.sh): where
# llama.cpp's tools, the model and the evaluation text are, and the two perplexity measurements
# on the protocol's windows (wikitext-2 test, 512-token windows, second half of each scored, as
# llama-perplexity does).
#
# llama.cpp's tools are built once (minutes) from the llama.cpp that llama-cpp-python vendors:
#   pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d ~/.cache/qdist/llamacpp
#   tar xzf …/llama_cpp_python-0.3.36.tar.gz; cd …/vendor/llama.cpp
#   cmake -B build -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF
#   cmake --build build -j2 --target llama-quantize llama-perplexity llama-imatrix
# LLAMA_BIN points at build/bin; MODEL at SmolLM2 (Launch/get-smollm2.sh); WINDOWS (40) sets the
# evaluation windows.
llama=${LLAMA_BIN:-$HOME/.cache/qdist/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin}
model=${MODEL:-$HOME/.cache/qdist/smollm2-135m-instruct}
bin=.build/release/qdist
test=../shared/data/wikitext-2/test.txt
windows=${WINDOWS:-40}
export LD_LIBRARY_PATH="$llama:${LD_LIBRARY_PATH:-}"

# qdist eval on a file (extra flags after it, e.g. --llamacpp-activations); prints the ppl.
ppl_qdist() { "$bin" eval --model "$@" --data "$test" --windows "$windows" --second-half --json 2>/dev/null \
  | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ppl"], 4))'; }
# llama-perplexity on a file, 2 threads; prints its final estimate.
ppl_llama() { "$llama/llama-perplexity" -m "$1" -f "$test" -c 512 --chunks "$windows" -t 2 2>&1 \
  | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'; }
