#!/usr/bin/env bash
# moe4j against llama.cpp decoding several sequences at once on the same GGUF file, same threads, interleaved
# (A = `moe4j bench generate --sequences N`, B = scripts/bench/llama-cpp-batched.mjs), --rounds rounds per sequence
# count: aggregate decode tokens/s (median, min, max) and the ratio moe4j / llama.cpp, with the load average.
# Needs node-llama-cpp and @node-llama-cpp/linux-x64 3.22.1 installed under --modules (scripts/bench/vs-llama-cpp.sh
# installs them into .bench/llama). Run by hand on a quiet machine, never in CI.
#   scripts/bench/vs-llama-cpp-batched.sh --model FILE.gguf [--sequences "1 4 16"] [--rounds 3] [--threads 2]
#       [--prompt-tokens 64] [--decode-tokens 32] [--modules .bench/llama]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model="" sequences="1 4 16" rounds=3 threads=2 prompt=64 decode=32 modules="$root/.bench/llama"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2" ;; --sequences) sequences="$2" ;; --rounds) rounds="$2" ;; --threads) threads="$2" ;;
    --prompt-tokens) prompt="$2" ;; --decode-tokens) decode="$2" ;; --modules) modules="$2" ;;
    *) echo "vs-llama-cpp-batched: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -f "$model" ] || { echo "vs-llama-cpp-batched: --model FILE.gguf is required" >&2; exit 2; }
vocab="$("$root/moe4j" inspect --json "$model" 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{console.log(JSON.parse(s).config.vocab_size)})')"
printf 'sequences  moe4j tokens/s (median min max)   llama.cpp tokens/s (median min max)   ratio   load\n'
for n in $sequences; do
  a=() b=()
  for r in $(seq "$rounds"); do
    a+=("$("$root/moe4j" bench generate --model "$model" --threads "$threads" --prompt-tokens "$prompt" \
      --decode-tokens "$decode" --runs 1 --sequences "$n" --json 2>/dev/null \
      | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).batched_decode_tokens_per_s_median_min_max['$n'][0]))")")
    b+=("$(node "$root/scripts/bench/llama-cpp-batched.mjs" --modules "$modules" --model "$model" --sequences "$n" \
      --prompt-tokens "$prompt" --decode-tokens "$decode" --threads "$threads" --vocab "$vocab" \
      | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).decode_tokens_per_s))")")
  done
  node -e '
    const [n, a, b, load] = [process.argv[1], process.argv[2].split(" ").map(Number), process.argv[3].split(" ").map(Number), process.argv[4]];
    const med = v => { const s = [...v].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
    const f = v => `${med(v).toFixed(2)} (${Math.min(...v).toFixed(2)} ${Math.max(...v).toFixed(2)})`;
    console.log(`${n.padStart(9)}  ${f(a).padEnd(32)} ${f(b).padEnd(36)} ${(med(a) / med(b)).toFixed(2)}x  ${load}`);
  ' "$n" "${a[*]}" "${b[*]}" "$(cut -d" " -f1-3 /proc/loadavg)"
done
