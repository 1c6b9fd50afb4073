#!/usr/bin/env bash
# On the device machine, from the checkout's root, with the folder scripts/device/package-cuda.sh filled: decode
# tokens/s on the GPU of two Qwen3-MoE-shaped models against the bandwidth limit measured in the same run: the
# `bench make-model` default (8 layers, hidden 1024, 64 experts top-8) and one with Qwen3-30B-A3B's layer geometry
# (hidden 2048, 32 heads / 4 kv, 128 experts of 768, top-8, vocabulary 151936; 4 of its 48 layers, to fit the
# disk and the time). --profile adds a Java Flight Recording of the first benchmark to $OUT. --graphs-ab runs the small
# model's benchmark four times instead, decoding steps by direct launches (-Dmoe4j.cuda.graphs=false) and as recorded
# CUDA graphs alternately (A B A B), each with 1, 16 and 64 sequences decoded together; with --profile the first
# direct run is recorded.
# Usage: DIR/gpu-decode.sh [--profile] [--skip-large] [--graphs-ab]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp/moe4j-gpu}"
mkdir -p "$out" /tmp/moe4j-runtime
profile=0; large=1; ab=0
for a in "$@"; do
  case "$a" in
    --profile) profile=1 ;;
    --skip-large) large=0 ;;
    --graphs-ab) ab=1 ;;
  esac
done
[ -x /tmp/moe4j-runtime/runtime/bin/java ] || tar -C /tmp/moe4j-runtime -xJf "$here/runtime.txz"
# the jar travels uncompressed inside runtime.txz (xz packs it smaller than its own deflate)
jar=/tmp/moe4j-runtime/moe4j.jar
java=(/tmp/moe4j-runtime/runtime/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx48g)
moe4j=("${java[@]}" -jar "$jar")
status=0
echo "== bench generate --device cuda, make-model default (Qwen3-MoE style, hidden 1024, 8 layers)"
[ -d /tmp/moe4j-bench-qwen3 ] || timeout 60 "${moe4j[@]}" bench make-model --out /tmp/moe4j-bench-qwen3 >"$out/make-model.log" 2>&1 || status=1
jfr=()
[ $profile = 1 ] && jfr=(-XX:StartFlightRecording=filename=$out/decode.jfr,settings=profile)
if [ $ab = 1 ]; then
  for round in 1 2; do
    for graphs in false true; do
      echo "== round $round, moe4j.cuda.graphs=$graphs"
      timeout 120 "${java[@]}" "${jfr[@]}" -Dmoe4j.cuda.graphs=$graphs -jar "$jar" bench generate --device cuda \
        --model /tmp/moe4j-bench-qwen3 --sequences 1,16,64 >"$out/bench-generate-$round-$graphs.log" 2>&1 || status=1
      grep -E "run |sequences decoded|best|median" "$out/bench-generate-$round-$graphs.log"
      jfr=()
    done
  done
  exit $status
fi
timeout 150 "${java[@]}" "${jfr[@]}" -jar "$jar" bench generate --device cuda --model /tmp/moe4j-bench-qwen3 \
  >"$out/bench-generate.log" 2>&1 || status=1
grep -v WARNING "$out/bench-generate.log"
if [ $large = 1 ]; then
  echo "== bench generate --device cuda, Qwen3-30B-A3B layer geometry, 4 layers"
  timeout 200 "${moe4j[@]}" bench make-model --out /tmp/moe4j-bench-qwen3-30b --layers 4 --hidden 2048 --heads 32 \
    --kv-heads 4 --experts 128 --top-k 8 --expert-size 768 --vocab 151936 >"$out/make-model-30b.log" 2>&1 || { status=1; tail -3 "$out/make-model-30b.log"; }
  grep -v WARNING "$out/make-model-30b.log" | tail -2
  timeout 200 "${moe4j[@]}" bench generate --device cuda --model /tmp/moe4j-bench-qwen3-30b >"$out/bench-generate-30b.log" 2>&1 || status=1
  grep -v WARNING "$out/bench-generate-30b.log"
fi
exit $status
