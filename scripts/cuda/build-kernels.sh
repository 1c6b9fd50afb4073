#!/usr/bin/env bash
# Compiles the CUDA C kernels under cuda/src/main/cuda to PTX resources of the cuda module (checked in, so that
# neither the build nor the user needs nvcc). The PTX targets compute_80, so the driver can compile it for any GPU
# from Ampere on when it loads the module. Also prints each kernel's registers, shared memory and spills for sm_90
# (H100/H200), so a change that spills shows up here before any device time is spent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
nvcc="${NVCC:-/usr/local/cuda/bin/nvcc}"
out="$root/cuda/src/main/resources/dev/moe4j/cuda"
mkdir -p "$out"
for src in "$root"/cuda/src/main/cuda/*.cu; do
  name="$(basename "$src" .cu)"
  "$nvcc" -std=c++17 -O3 -arch=compute_80 -ptx "$src" -o "$out/$name.ptx"
  "$nvcc" -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -cubin --resource-usage "$src" \
    -o "/tmp/$name.sm_90a.cubin" 2>&1 | grep -E "Function properties|registers|spill|error|warning" | sed 's/^ptxas info *: //' || true
  echo "built $out/$name.ptx ($(wc -c <"$out/$name.ptx") bytes)"
done
