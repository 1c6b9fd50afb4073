#!/usr/bin/env bash
# moe4j against llama.cpp on the same model, same prompt, same threads, on this machine's CPU.
#
# On a fresh machine it installs llama.cpp's prebuilt CPU build (npm packages node-llama-cpp and
# @node-llama-cpp/linux-x64, 3.22.1) into an ignored folder, makes a model with random weights
# (`moe4j bench make-model`), converts it to GGUF with `moe4j convert --to gguf`, then runs
# `moe4j bench generate` (A) and llama.cpp (B, scripts/bench/llama-cpp-generate.mjs), both on the same GGUF file,
# interleaved A B A B for
# --rounds rounds at each thread count and weight type, and prints one table: prefill and decode tokens/s
# (median, min, max), the ratio moe4j / llama.cpp, bytes of weights per decoded token against the memory bandwidth
# moe4j measured in the same run, whether the greedy tokens are the same, the load average and the CPU flags.
# Run by hand on a quiet machine, never in CI.  ./scripts/bench/vs-llama-cpp.sh --help
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/scripts/bench"
llama_version="3.22.1"

rounds=3
threads_list="1 2"
dtypes="f32 bf16"
work="$root/.bench"
prompt_tokens=128
decode_tokens=64
warm_ups=1
llama_args=""
family=mixtral layers=8 hidden=1024 heads=16 kv_heads=4 experts=8 top_k=2 expert_size=3584 vocab=32000

usage() {
  cat <<EOF
usage: scripts/bench/vs-llama-cpp.sh [options]

  --rounds N          interleaved rounds (A = moe4j, B = llama.cpp) per thread count and type (default $rounds)
  --threads "1 2"     thread counts (default "$threads_list")
  --dtypes "f32 bf16" weight types: f32, bf16, f16, or a quantised GGUF file type q8_0, q4_0, q4_k_m, q5_k_m, q6_k,
                      mxfp4_moe (made from the BF16 model with 'moe4j convert --type'; default "$dtypes")
  --prompt-tokens N   prompt length (default $prompt_tokens)
  --decode-tokens N   tokens decoded greedily (default $decode_tokens)
  --warm-ups N        untimed generations each engine runs first, at the measured sizes (default $warm_ups; moe4j's
                      JIT compiles its kernels meanwhile: on two cores its compiler threads compete with two compute
                      threads for the first few generations)
  --work DIR          where npm packages, models and results go (default .bench, ignored by git)
  --llama-args "..."  passed to scripts/bench/llama-cpp-generate.mjs, e.g. "--flash-attention auto --kv-cache-type f16"
                      for llama.cpp's own defaults (by default it computes what moe4j computes: F32 KV cache, no
                      flash attention)
  model shape, as 'moe4j bench make-model' takes it (default: the Mixtral-shaped model of issue 12):
  --family $family --layers $layers --hidden $hidden --heads $heads --kv-heads $kv_heads --experts $experts
  --top-k $top_k --expert-size $expert_size --vocab $vocab   (family: mixtral or qwen3_moe)

Needs node >= 20 with npm (to install llama.cpp's prebuilt build) and what ./moe4j needs (a JDK >= 25, Maven).
Models are made once per shape and type and reused; every run's JSON goes to WORK/results/.
MOE4J_MAKE_MODEL_HEAP (default 10g) is the heap of make-model, which holds the whole model while writing it.
EOF
}

die() { echo "vs-llama-cpp: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads_list="$2"; shift 2 ;;
    --dtypes) dtypes="$2"; shift 2 ;;
    --prompt-tokens) prompt_tokens="$2"; shift 2 ;;
    --decode-tokens) decode_tokens="$2"; shift 2 ;;
    --warm-ups) warm_ups="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --llama-args) llama_args="$2"; shift 2 ;;
    --family) family="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    --hidden) hidden="$2"; shift 2 ;;
    --heads) heads="$2"; shift 2 ;;
    --kv-heads) kv_heads="$2"; shift 2 ;;
    --experts) experts="$2"; shift 2 ;;
    --top-k) top_k="$2"; shift 2 ;;
    --expert-size) expert_size="$2"; shift 2 ;;
    --vocab) vocab="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

for n in "$rounds" "$prompt_tokens" "$decode_tokens" $threads_list; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive number (--rounds, --threads, --prompt-tokens, --decode-tokens)"
done
[[ "$warm_ups" =~ ^[0-9]+$ ]] || die "'$warm_ups' is not a count of 0 or more (--warm-ups)"
[ "$decode_tokens" -ge 2 ] || die "--decode-tokens must be at least 2 (decode speed is measured after the first token)"
for d in $dtypes; do
  case "$d" in f32|bf16|f16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k|mxfp4_moe) ;;
    *) die "--dtypes: expected f32, bf16, f16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k or mxfp4_moe, got '$d'" ;; esac
done
case "$family" in mixtral|qwen3_moe) ;; *) die "--family: moe4j converts mixtral and qwen3_moe to GGUF, not '$family'" ;; esac

# ---- what the machine needs --------------------------------------------------------------------------------------
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "llama.cpp's prebuilt build used here (@node-llama-cpp/linux-x64) is for Linux on x86-64, not $(uname -s)-$(uname -m)"
command -v node >/dev/null 2>&1 || die "node is not installed; install Node.js >= 20 (e.g. apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed; it comes with Node.js (e.g. apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old; node-llama-cpp $llama_version needs node >= 20"

mkdir -p "$work/llama" "$work/models" "$work/results"
work="$(cd "$work" && pwd)"
modules="$work/llama"
installed="$(node -p "try { require('$modules/node_modules/node-llama-cpp/package.json').version } catch (e) { '' }" 2>/dev/null || true)"
binary="$(node -p "try { require('$modules/node_modules/@node-llama-cpp/linux-x64/package.json').version } catch (e) { '' }" 2>/dev/null || true)"
if [ "$installed" != "$llama_version" ] || [ "$binary" != "$llama_version" ]; then
  echo "vs-llama-cpp: installing node-llama-cpp@$llama_version and @node-llama-cpp/linux-x64@$llama_version into $modules ..." >&2
  [ -f "$modules/package.json" ] || echo '{"private": true}' > "$modules/package.json"
  # --ignore-scripts: node-llama-cpp's postinstall could build llama.cpp from source; the prebuilt binary is the point.
  # --omit=optional: the CUDA, Vulkan and other platforms' builds (over 600 MB) are not wanted.
  (cd "$modules" && npm install --no-audit --no-fund --ignore-scripts --omit=optional --save-exact \
      "node-llama-cpp@$llama_version" "@node-llama-cpp/linux-x64@$llama_version" >"$work/npm-install.log" 2>&1) \
    || { tail -20 "$work/npm-install.log" >&2; die "npm install failed (log: $work/npm-install.log)"; }
fi

cd "$root"
./moe4j --version >/dev/null || die "./moe4j does not run (see above)"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$work/results/vs-llama-cpp-$stamp.jsonl"
logs="$work/results/vs-llama-cpp-$stamp.log"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- models: made once per shape and type, converted once -------------------------------------------------------
shape="$family-l$layers-h$hidden-a$heads-kv$kv_heads-e$experts-k$top_k-i$expert_size-v$vocab"
declare -A gguf_file
make_model() { # dtype -> folder made once (a quantised file is made from the BF16 folder)
  local dir="$work/models/$shape-$1"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    echo "vs-llama-cpp: making $dir ..." >&2
    MOE4J_JAVA_OPTS="${MOE4J_JAVA_OPTS:-} -Xmx${MOE4J_MAKE_MODEL_HEAP:-10g}" ./moe4j bench make-model --out "$dir" \
      --family "$family" --layers "$layers" --hidden "$hidden" --heads "$heads" --kv-heads "$kv_heads" \
      --experts "$experts" --top-k "$top_k" --expert-size "$expert_size" --vocab "$vocab" \
      --context "$((prompt_tokens + decode_tokens + 64))" --dtype "${1^^}" 2>>"$logs" \
      || { tail -5 "$logs" >&2; die "make-model failed (log: $logs)"; }
    touch "$dir/.complete"
  fi
  echo "$dir"
}
for d in $dtypes; do
  case "$d" in
    f32|bf16|f16) dir="$(make_model "$d")"; type=same; gguf="$dir.gguf" ;;
    *) dir="$(make_model bf16)"; type="$d"; gguf="$work/models/$shape-$d.gguf" ;;
  esac
  if [ ! -f "$gguf" ] || [ "$gguf" -ot "$dir/.complete" ]; then
    echo "vs-llama-cpp: converting to $gguf ..." >&2
    ./moe4j convert --to gguf --model "$dir" --out "$gguf" --type "$type" 2>>"$logs" \
      || { tail -5 "$logs" >&2; die "convert failed (log: $logs)"; }
  fi
  gguf_file[$d]="$gguf"
done

# ---- runs: A B A B ... ---------------------------------------------------------------------------------------------
# Each line of $results is one run's JSON with "engine", "dtype" and "round" added.
tag() { # engine dtype round < json
  node -e 'let s = ""; process.stdin.on("data", c => s += c).on("end", () => {
    const line = s.trim().split("\n").filter(l => l.startsWith("{")).pop();
    if (!line) { process.exit(1); }
    const o = JSON.parse(line);
    Object.assign(o, {engine: process.argv[1], dtype: process.argv[2], round: Number(process.argv[3])});
    console.log(JSON.stringify(o)); });' "$1" "$2" "$3"
}

declare -A prompt_ids
for round in $(seq 1 "$rounds"); do
  for d in $dtypes; do
    for t in $threads_list; do
      echo "vs-llama-cpp: round $round/$rounds, $d, $t thread(s): moe4j ..." >&2
      out="$(./moe4j bench generate --model "${gguf_file[$d]}" --json --prompt-tokens "$prompt_tokens" \
          --decode-tokens "$decode_tokens" --warm-ups "$warm_ups" --runs 1 --threads "$t" 2>>"$logs")" \
        || { tail -5 "$logs" >&2; die "moe4j bench generate failed (log: $logs)"; }
      line="$(printf '%s\n' "$out" | tag moe4j "$d" "$round")" || die "moe4j bench generate printed no JSON: $out"
      echo "$line" >> "$results"
      if [ -z "${prompt_ids[$d]:-}" ]; then
        prompt_ids[$d]="$(node -p 'JSON.parse(process.argv[1]).prompt_ids.join(",")' "$line")"
      fi
      echo "vs-llama-cpp: round $round/$rounds, $d, $t thread(s): llama.cpp ..." >&2
      out="$(node "$here/llama-cpp-generate.mjs" --modules "$modules" --model "${gguf_file[$d]}" \
          --prompt-ids "${prompt_ids[$d]}" --decode-tokens "$decode_tokens" --warm-ups "$warm_ups" --threads "$t" \
          $llama_args 2>>"$logs")" \
        || { tail -5 "$logs" >&2; die "llama.cpp failed (log: $logs)"; }
      printf '%s\n' "$out" | tag llama.cpp "$d" "$round" >> "$results" || die "llama.cpp printed no JSON: $out"
    done
  done
done

load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
flags="$(sed -n 's/^flags[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr ' ' '\n' \
  | grep -E '^(avx|avx2|fma|f16c|avx512[a-z_0-9]*|avx_vnni|amx[a-z_0-9]*)$' | sort | tr '\n' ' ')"
node "$here/vs-llama-cpp-table.mjs" "$results" \
  "$cpu, $(nproc) CPUs; flags: ${flags:-none of avx/avx2/fma/f16c/avx512/amx}" \
  "load average (1, 5, 15 min) before: $load_before; after: $load_after" \
  "model: $shape; prompt $prompt_tokens tokens, decode $decode_tokens; $rounds round(s); node $(node --version)"
echo "vs-llama-cpp: runs in $results, logs in $logs" >&2
