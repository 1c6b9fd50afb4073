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
shape=(--hidden 256 --top-k 2 --expert-size 256 --vocab 300 --context 64 --seed "$seed")
families=(qwen3_moe mixtral olmoe gpt_oss deepseek_v3)
types=(f32 q8_0 q4_0 q4_k_m q6_k mxfp4_moe)
# each family's own flags besides the shape
family_flags() {
  case "$1" in
    olmoe) echo --layers 2 --heads 4 --kv-heads 4 --experts 4 ;; # llama.cpp's olmoe has no grouped-query attention
    # gpt_oss and deepseek_v3 with attention weights of N(0, 0.1²) rather than 0.02², so that attention is sharp and
    # positions (RoPE, YaRN's rounded correction range, the window) show in the logits; gpt_oss with a window of 4 on
    # layer 0, which the 14 positions reach past, and heads of 16, whose YaRN correction range (2.0 to 4.4 of 8
    # frequencies) ggml rounds to 2 to 5
    gpt_oss) echo --layers 2 --heads 16 --head-dim 16 --kv-heads 4 --experts 4 --sliding-window 4 \
      --initializer-range 0.1 ;;
    # one dense layer and two MoE layers; 8 experts in 4 groups, the best 2 groups open; nope, v, the latent
    # and the query rank 256 wide (attn_k_b's rows are nope, attn_v_b's the latent)
    deepseek_v3) echo --layers 3 --heads 2 --head-dim 256 --rope-dim 64 --q-lora-rank 256 --kv-lora-rank 256 \
      --experts 8 --groups 4 --top-groups 2 --shared-experts 1 --dense-layers 1 --dense-size 256 \
      --initializer-range 0.1 ;;
    *) echo --layers 2 --heads 4 --kv-heads 2 --experts 4 ;;
  esac
}
mkdir -p "$out"
rm -f "$out"/*.f32 "$out"/*.json
for family in "${families[@]}"; do
  read -r -a own <<< "$(family_flags "$family")"
  flags=(--family "$family" "${shape[@]}" "${own[@]}")
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
