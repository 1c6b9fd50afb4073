#!/usr/bin/env bash
# On the device machine, from the checkout's root, with the folder scripts/device/package-cuda.sh filled: probes the
# machine, runs the GPU tests (backend ops, the MoE layer, every fixture model's parity, recorded decoding steps against
# direct launches, train-step gradients),
# `moe4j bench generate --device cuda` on a Qwen3-MoE-shaped model, the attention kernels beside PyTorch's SDPA,
# `moe4j bench moe --device cuda` and the PyTorch MoE baselines, and prints a short summary last. Each step has a time
# limit so that one call fits the device's ten minutes. Logs go to $OUT (or /tmp/moe4j-gpu).
# Usage: DIR/gpu-check.sh [--quick] [--skip-tests] [--skip-bench] [--skip-torch] [--sanitize]   (--sanitize, last:
# compute-sanitizer memcheck on the backend and MoE layer tests, racecheck on the attention kernels' test)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-/tmp/moe4j-gpu}"
mkdir -p "$out" /tmp/moe4j-runtime
quick=""; tests=1; bench=1; torch=1; sanitize=0
for a in "$@"; do
  case "$a" in
    --quick) quick="--quick" ;;
    --skip-tests) tests=0 ;;
    --skip-bench) bench=0 ;;
    --skip-torch) torch=0 ;;
    --sanitize) sanitize=1 ;;
  esac
done
tar -C /tmp/moe4j-runtime -xJf "$here/runtime.txz"
# moe4j finds cuBLAS by soname or under /usr/local/cuda; elsewhere (a Python wheel), point it at the library.
if ! ldconfig -p | grep -q "libcublas.so.1[23]" && [ ! -e /usr/local/cuda/lib64/libcublas.so.13 ] && [ -z "${MOE4J_LIBCUBLAS:-}" ]; then
  found="$(find / -xdev -name 'libcublas.so.1[23]' 2>/dev/null | head -1)"
  [ -n "$found" ] && export MOE4J_LIBCUBLAS="$found"
fi
# the jar travels uncompressed inside runtime.txz (xz packs it smaller than its own deflate)
jar=/tmp/moe4j-runtime/moe4j.jar
java=(/tmp/moe4j-runtime/runtime/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx48g)
moe4j=("${java[@]}" -jar "$jar")
started=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - started )) s]"; }
# The device's commands stop at ten minutes: a step that would start too late is skipped, so the logs come back.
budget="${MOE4J_GPU_CHECK_SECONDS:-560}"
time_left() { [ $(( $(date +%s) - started )) -lt $(( budget - $1 )) ] || { echo "(skipped: under $1 s left)"; return 1; }; }

{
  echo "== probe"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  ldconfig -p | grep -E "libcuda.so|libcublas" || true
  echo "MOE4J_LIBCUBLAS=${MOE4J_LIBCUBLAS:-}"
  nproc; free -g | head -2
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
} >"$out/probe.log" 2>&1
grep -E "NVIDIA|torch" "$out/probe.log"

status=0
if [ $tests = 1 ]; then
  echo "== GPU tests (JUnit) $(elapsed)"
  # The fixtures are read from the checkout (model's; its mixtral and qwen2-moe hold the train-step references too).
  cp="model/src/test/resources:$jar:$here/cuda-tests.jar:$here/core-tests.jar:$here/model-tests.jar:$here/train-tests.jar"
  timeout 330 "${java[@]}" -jar "$here/junit-console.jar" execute --disable-banner --details=tree \
    --class-path "$cp" --select-package dev.moe4j.cuda --select-class dev.moe4j.model.parity.GpuArchitectureParityTest \
    --select-class dev.moe4j.model.parity.RecordedDecodingTest \
    --select-class dev.moe4j.train.parity.GpuTrainStepParityTest --reports-dir "$out/junit" >"$out/tests.log" 2>&1 || status=1
  grep -E "GPU parity|GPU train step|GPU tests on" "$out/tests.log"
  grep -E "✘|MethodSource|=> " "$out/tests.log" | head -40
  grep -E "tests (successful|failed|skipped|aborted)" "$out/tests.log"
fi
echo "== moe4j train --tiny --device cuda, then generate and score with the trained model on the GPU $(elapsed)"
time_left 200 && timeout 90 "${moe4j[@]}" train --tiny --device cuda --out /tmp/moe4j-tiny-run >"$out/train.log" 2>&1 || status=1
grep -vE "WARNING|^\s*$" "$out/train.log" | tail -6
time_left 190 && timeout 60 "${moe4j[@]}" train --tiny --device cuda --precision f32 --out /tmp/moe4j-tiny-f32 >"$out/train-f32.log" 2>&1 || status=1
grep -E "^trained" "$out/train-f32.log"
time_left 180 && timeout 30 "${moe4j[@]}" generate --device cuda --model /tmp/moe4j-tiny-run --prompt "ROMEO:" --max-tokens 12 \
  --temperature 0 >"$out/generate.log" 2>&1 || status=1
grep -v WARNING "$out/generate.log" | tail -3
echo "== moe4j chat over three turns (the KV cache kept between turns): the GPU in F32 against the CPU $(elapsed)"
chat() { printf 'hello there\nand again\nthird turn\n' | timeout 60 "${moe4j[@]}" chat --model model/src/test/resources/fixtures/mixtral \
  --template io/src/test/resources/chat/mixtral.jinja --max-tokens 8 --temperature 0 "$@"; }
time_left 170 && { chat --device cpu >"$out/chat-cpu.log" 2>&1; chat --device cuda --precision f32 >"$out/chat-gpu.log" 2>&1; \
  chat --device cuda >"$out/chat-gpu-bf16.log" 2>&1; grep "reused" "$out/chat-gpu.log"; \
  echo "chat in bf16 on the GPU: $(grep -c reused "$out/chat-gpu-bf16.log") of 3 turns answered"; \
  if [ "$(grep -c reused "$out/chat-cpu.log")" = 3 ] && [ "$(grep -c reused "$out/chat-gpu.log")" = 3 ] \
    && diff <(grep -v reused "$out/chat-cpu.log") <(grep -v reused "$out/chat-gpu.log") >/dev/null; then \
    echo "chat: the GPU's three replies equal the CPU's"; else echo "chat: the GPU's replies differ from the CPU's, or a chat failed"; tail -3 "$out/chat-gpu.log"; status=1; fi; }
if [ $bench = 1 ]; then
  echo "== moe4j bench generate --device cuda (Qwen3-MoE-shaped model) $(elapsed)"
  time_left 120 && timeout 60 "${moe4j[@]}" bench make-model --out /tmp/moe4j-bench-qwen3 >"$out/make-model.log" 2>&1 || { status=1; tail -3 "$out/make-model.log"; }
  time_left 100 && timeout 120 "${moe4j[@]}" bench generate --device cuda --model /tmp/moe4j-bench-qwen3 $quick >"$out/bench-generate.log" 2>&1 || status=1
  cat "$out/bench-generate.log"
  time_left 100 && timeout 120 "${moe4j[@]}" bench generate --device cuda --precision f32 --model /tmp/moe4j-bench-qwen3 $quick >"$out/bench-generate-f32.log" 2>&1 || status=1
  cat "$out/bench-generate-f32.log"
  echo "== attention: moe4j's kernels, then PyTorch SDPA $(elapsed)"
  for shape in "4096 32 8 128" "4096 16 4 64"; do
    time_left 60 && timeout 45 "${java[@]}" -cp "$jar" dev.moe4j.cuda.bench.AttentionBenchmark $shape >>"$out/bench-attention.log" 2>&1 || status=1
  done
  grep -v WARNING "$out/bench-attention.log"
  if [ $torch = 1 ]; then
    time_left 70 && PYTHONUNBUFFERED=1 timeout 60 python3 "$here/moe_baselines.py" --attention-only >"$out/torch-attention.log" 2>&1 || status=1
    grep -v '^{' "$out/torch-attention.log" | tail -4
  fi
  echo "== moe4j bench moe --device cuda $quick $(elapsed)"
  time_left 100 && timeout 120 "${moe4j[@]}" bench moe --device cuda $quick >"$out/bench-moe.log" 2>&1 || status=1
  cat "$out/bench-moe.log"
fi
if [ $torch = 1 ] && [ $bench = 1 ]; then
  echo "== PyTorch MoE baselines $quick $(elapsed)"
  time_left 60 && PYTHONUNBUFFERED=1 timeout $(( budget - $(date +%s) + started - 10 )) python3 "$here/moe_baselines.py" $quick >"$out/torch.log" 2>&1 || status=1
  grep -v '^{' "$out/torch.log" | tail -12
fi
if [ $sanitize = 1 ]; then
  cp="$jar:$here/cuda-tests.jar:$here/core-tests.jar:$here/model-tests.jar:$here/train-tests.jar"
  echo "== compute-sanitizer memcheck (backend and MoE layer tests) $(elapsed)"
  time_left 130 && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 "${java[@]}" -jar "$here/junit-console.jar" \
    execute --disable-banner --details=summary --class-path "$cp" --select-class dev.moe4j.cuda.CudaBackendTest \
    --select-class dev.moe4j.cuda.MoeLayerOnGpuTest >"$out/memcheck.log" 2>&1
  echo "memcheck exit $?"; grep -E "ERROR SUMMARY|tests (successful|failed)|Invalid|out of bounds" "$out/memcheck.log" | head -8
  echo "== compute-sanitizer racecheck (attention: tensor-core and CUDA-core kernels) $(elapsed)"
  time_left 80 && timeout 90 compute-sanitizer --tool racecheck --error-exitcode 3 "${java[@]}" -jar "$here/junit-console.jar" \
    execute --disable-banner --details=summary --class-path "$cp" \
    --select-method "dev.moe4j.cuda.CudaBackendTest#attentionOnTensorCoresAndCudaCoresAndItsGradientMatchTheCpu" \
    >"$out/racecheck.log" 2>&1
  echo "racecheck exit $?"; grep -E "RACECHECK SUMMARY|ERROR SUMMARY|tests (successful|failed)|hazard" "$out/racecheck.log" | head -8
fi
echo "== summary $(elapsed)"
grep -E "tests (successful|failed)" "$out/tests.log" 2>/dev/null || true
grep -E "^best:" "$out/bench-generate.log" 2>/dev/null || true
exit $status
