#!/usr/bin/env bash
# Runs experiment sweeps side by side on a many-core machine without a JDK (the device machine): each argument is
# one process, "NAME" or "NAME:VARIANT,VARIANT" (moe4j experiment NAME --only ...), with THREADS threads each.
# Expects a jlinked runtime as .carry/runtime.tgz (scripts/device/package.sh) or, smaller, .carry/rt/runtime.txz
# (the same folder through xz), and the jar as .carry/exp.jar. Run folders go to
# runs/ (kept while the machine stays warm); their small files (no weights) go to $OUT/runs.tgz at the end,
# with each process's log, so that they can be gathered where the rest of the sweep ran.
set -uo pipefail
threads="${THREADS:-3}"
limit="${LIMIT_S:-540}"
rt=/tmp/moe4j-runtime
if [ ! -x "$rt/runtime/bin/java" ]; then
  mkdir -p "$rt"
  if [ -f .carry/rt/runtime.txz ]; then xz -d < .carry/rt/runtime.txz | tar -C "$rt" -xf -; else tar -C "$rt" -xzf .carry/runtime.tgz; fi
fi
java=("$rt/runtime/bin/java" --add-modules jdk.incubator.vector -XX:+UseParallelGC -jar .carry/exp.jar)
out="${OUT:-/tmp/out}"
mkdir -p "$out/logs"
echo "cores $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $threads threads per process"
i=0
for group in "$@"; do
  name="${group%%:*}"
  args=(experiment "$name" --threads "$threads" --cache "/tmp/moe4j-cache-$i")
  [ "$group" != "$name" ] && args+=(--only "${group#*:}")
  timeout "$limit" "${java[@]}" "${args[@]}" > "$out/logs/$i-$name.log" 2>&1 &
  i=$((i + 1))
done
wait
# Every run's small files in one archive (the weights stay behind): the device returns only a few files per call.
tar --exclude='*.safetensors' --exclude='optimizer*' -czf "$out/runs.tgz" runs
tail -n 3 "$out"/logs/*.log
