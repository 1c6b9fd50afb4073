#!/usr/bin/env bash
# On the device machine, from the checkout's root, with the folder scripts/device/package-cuda.sh filled: the first
# check of recorded decoding steps (CUDA graphs) in one call of LIMIT seconds (default 500), most telling first, since
# device time comes scarce: CapturedWorkTest and RecordedDecodingTest, then gpu-decode.sh --graphs-ab's four benchmark
# runs (the same commands; a run that would not fit the time left is skipped), then the whole GPU suite of gpu-check.sh
# with what is left. Logs go to $OUT (or /tmp/moe4j-gpu); the output names each step's elapsed seconds.
# Usage: DIR/gpu-graphs.sh [LIMIT]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; out="${OUT:-/tmp/moe4j-gpu}"; mkdir -p "$out" /tmp/moe4j-runtime
limit=${1:-500}; s=$(date +%s)
el() { echo "[$(( $(date +%s) - s )) s]"; }
left() { echo $(( limit - $(date +%s) + s )); }
tar -C /tmp/moe4j-runtime -xJf "$here/runtime.txz"
jar=/tmp/moe4j-runtime/moe4j.jar
java=(/tmp/moe4j-runtime/runtime/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx48g)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
cp="model/src/test/resources:$jar:$here/cuda-tests.jar:$here/core-tests.jar:$here/model-tests.jar:$here/train-tests.jar"
junit() { "${java[@]}" -jar "$here/junit-console.jar" execute --disable-banner --details=tree --class-path "$cp" "$@"; }
echo "== recorded-step tests $(el)"
timeout 120 bash -c "$(declare -p java cp here); $(declare -f junit); junit --select-class dev.moe4j.cuda.CapturedWorkTest \
  --select-class dev.moe4j.model.parity.RecordedDecodingTest --reports-dir $out/junit-new" >"$out/new-tests.log" 2>&1
echo "rc $?"; grep -E "✘|=> |tests (successful|failed|aborted)" "$out/new-tests.log" | head -40
echo "== graphs A/B $(el)"
timeout 60 "${java[@]}" -jar "$jar" bench make-model --out /tmp/moe4j-bench-qwen3 >"$out/make-model.log" 2>&1 || tail -3 "$out/make-model.log"
for round in 1 2; do
  for graphs in false true; do
    [ "$(left)" -gt 70 ] || { echo "(round $round graphs=$graphs skipped: $(left) s left)"; continue; }
    echo "== round $round, moe4j.cuda.graphs=$graphs $(el)"
    timeout $(( $(left) < 110 ? $(left) - 5 : 110 )) "${java[@]}" -Dmoe4j.cuda.graphs=$graphs -jar "$jar" bench generate --device cuda \
      --model /tmp/moe4j-bench-qwen3 --sequences 1,16,64 >"$out/bench-generate-$round-$graphs.log" 2>&1 || echo "rc $?"
    grep -E "memory bandwidth|run |sequences decoded|best|median|Exception|Error" "$out/bench-generate-$round-$graphs.log" | head -14
  done
done
[ "$(left)" -gt 40 ] || { echo "(whole GPU suite skipped: $(left) s left)"; exit 0; }
echo "== whole GPU suite $(el), $(left) s left"
timeout $(( $(left) - 5 )) bash -c "$(declare -p java cp here); $(declare -f junit); junit --select-package dev.moe4j.cuda \
  --select-class dev.moe4j.model.parity.GpuArchitectureParityTest --select-class dev.moe4j.train.parity.GpuTrainStepParityTest \
  --reports-dir $out/junit" >"$out/tests.log" 2>&1
echo "rc $?"; grep -E "✘|=> |tests (successful|failed|skipped|aborted)" "$out/tests.log" | head -30
echo "== end $(el)"
