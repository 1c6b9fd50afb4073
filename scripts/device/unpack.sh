#!/usr/bin/env bash
# On the device machine: unpack the carried runtime to /tmp/moe4j-runtime and print the java command to use.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p /tmp/moe4j-runtime
tar -C /tmp/moe4j-runtime -xzf "$root/.carry/runtime.tgz"
echo "/tmp/moe4j-runtime/runtime/bin/java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -jar $root/.carry/moe4j.jar"
