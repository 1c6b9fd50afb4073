#!/usr/bin/env bash
# On the device machine, from the folder scripts/device/package-cuda.sh filled: probes the machine, runs the cuda
# module's GPU tests, `moe4j bench moe --device cuda` and the PyTorch baselines, and prints a short summary last.
# Logs go to $OUT (or /tmp/moe4j-gpu). Usage: gpu-check.sh [--quick] [--skip-tests] [--skip-bench] [--skip-torch]
# [--sanitize]   (--sanitize also runs the GPU tests under compute-sanitizer: memcheck on all, racecheck on the
# transformer kernels, whose attention tiles share memory between threads)
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
tar -C /tmp/moe4j-runtime -xzf "$here/runtime.tgz"
# moe4j finds cuBLAS by soname or under /usr/local/cuda; elsewhere (a Python wheel), point it at the library.
if ! ldconfig -p | grep -q "libcublas.so.1[23]" && [ ! -e /usr/local/cuda/lib64/libcublas.so.13 ] && [ -z "${MOE4J_LIBCUBLAS:-}" ]; then
  found="$(find / -xdev -name 'libcublas.so.1[23]' 2>/dev/null | head -1)"
  [ -n "$found" ] && export MOE4J_LIBCUBLAS="$found"
fi
java=(/tmp/moe4j-runtime/runtime/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx24g)

{
  echo "== probe"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  ldconfig -p | grep -E "libcuda.so|libcublas|libnvrtc" || true
  ls /usr/local/cuda/lib64 2>/dev/null | grep -E "cublas|nvrtc" || true
  echo "MOE4J_LIBCUBLAS=${MOE4J_LIBCUBLAS:-}"
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1
} >"$out/probe.log" 2>&1
grep -E "NVIDIA|torch" "$out/probe.log"

status=0
if [ $tests = 1 ]; then
  echo "== GPU tests (JUnit)"
  "${java[@]}" -jar "$here/junit-console.jar" execute --disable-banner --details=tree \
    --class-path "$here/moe4j.jar:$here/cuda-tests.jar:$here/core-tests.jar" \
    --select-package dev.moe4j.cuda --reports-dir "$out/junit" >"$out/tests.log" 2>&1 || status=1
  tail -40 "$out/tests.log"
fi
if [ $bench = 1 ]; then
  echo "== moe4j bench moe --device cuda $quick"
  "${java[@]}" -jar "$here/moe4j.jar" bench moe --device cuda $quick >"$out/bench-moe.log" 2>&1 || status=1
  cat "$out/bench-moe.log"
fi
if [ $bench = 1 ]; then
  echo "== attention kernels"
  "${java[@]}" -cp "$here/moe4j.jar" dev.moe4j.cuda.bench.AttentionBenchmark >"$out/bench-attention.log" 2>&1 || status=1
  grep -v WARNING "$out/bench-attention.log"
fi
if [ $torch = 1 ]; then
  echo "== PyTorch baselines $quick"
  PYTHONUNBUFFERED=1 python3 "$here/moe_baselines.py" $quick >"$out/torch.log" 2>&1 || status=1
  grep -v '^{' "$out/torch.log" | tail -15
fi
if [ $sanitize = 1 ]; then
  cp=("$here/moe4j.jar:$here/cuda-tests.jar:$here/core-tests.jar")
  echo "== compute-sanitizer memcheck (all GPU tests)"
  timeout 240 compute-sanitizer --tool memcheck --error-exitcode 3 "${java[@]}" -jar "$here/junit-console.jar" execute \
    --disable-banner --details=summary --class-path "${cp[0]}" --select-package dev.moe4j.cuda >"$out/memcheck.log" 2>&1
  echo "memcheck exit $?"; grep -E "ERROR SUMMARY|tests (successful|failed)|Invalid|out of bounds" "$out/memcheck.log" | head -12
  echo "== compute-sanitizer racecheck (transformer kernels)"
  timeout 200 compute-sanitizer --tool racecheck --error-exitcode 3 "${java[@]}" -jar "$here/junit-console.jar" execute \
    --disable-banner --details=summary --class-path "${cp[0]}" --select-class dev.moe4j.cuda.kernels.TransformerKernelsTest \
    >"$out/racecheck.log" 2>&1
  echo "racecheck exit $?"; grep -E "RACECHECK SUMMARY|ERROR SUMMARY|tests (successful|failed)|hazard" "$out/racecheck.log" | head -12
fi
echo "== summary"
grep -E "tests (successful|failed|skipped)" "$out/tests.log" 2>/dev/null || true
exit $status
