#!/usr/bin/env bash
# Writes model/src/test/resources/llama-cpp: tiny random-weight GGUFs made by `moe4j bench make-model` (not kept:
# the test writes them again and checks their sha256) and llama.cpp's logits for them (scripts/LlamaCppLogits.java).
# usage: scripts/make_llama_cpp_fixtures.sh BINS_DIR
#   BINS_DIR: bins/linux-x64/ of the npm package @node-llama-cpp/linux-x64 3.22.1 (libllama, libggml*)
# JAVA_HOME: a JDK 25 (the generator uses the FFM API)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bins="$1"
out="$root/model/src/test/resources/llama-cpp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seed=7
# rows of 256 everywhere (hidden, expert width, heads x head width), so the K-quants are used, not their fallbacks
shape=(--layers 2 --hidden 256 --heads 4 --experts 4 --top-k 2 --expert-size 256 --vocab 300 --context 64
       --seed "$seed")
families=(qwen3_moe mixtral olmoe)
types=(f32 q8_0 q4_0 q4_k_m q6_k mxfp4_moe)
mkdir -p "$out"
rm -f "$out"/*.f32 "$out"/*.json
for family in "${families[@]}"; do
  kv=2
  [ "$family" = olmoe ] && kv=4 # llama.cpp's olmoe has no grouped-query attention
  flags=(--family "$family" "${shape[@]}" --kv-heads "$kv")
  "$root/moe4j" bench make-model "${flags[@]}" --dtype F32 --out "$work/$family"
  cp "$work/$family/config.json" "$out/$family.config.json"
  for type in "${types[@]}"; do
    "$root/moe4j" bench make-model "${flags[@]}" --type "$type" --out "$work/$family-$type.gguf"
  done
done
printf '{"seed": %d, "families": ["%s"], "types": ["%s"]}\n' "$seed" \
  "$(IFS=,; echo "${families[*]}" | sed 's/,/", "/g')" "$(IFS=,; echo "${types[*]}" | sed 's/,/", "/g')" \
  > "$out/make-model.json"
"${JAVA_HOME:+$JAVA_HOME/bin/}java" --enable-native-access=ALL-UNNAMED "$root/scripts/LlamaCppLogits.java" "$bins" "$out" \
  1,17,250,42,5,299,260,99 6 "$work"/*.gguf
