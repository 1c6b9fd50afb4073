#!/usr/bin/env bash
# Packs what a GPU machine without a JDK needs to run moe4j: a jlink'ed Java 25 runtime and the moe4j jar, under
# .carry/ (git-ignored). Carry `.carry` to the device machine and unpack with scripts/device/unpack.sh there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
./moe4j build >/dev/null
jdk="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
# jdeps also lists jdk.jdi, jdk.attach, java.instrument and java.compiler, reached only from javassist helpers
# that moe4j never calls (Jinjava brings them); leaving them out keeps the runtime small.
modules="java.base,java.desktop,java.logging,java.management,java.sql,java.xml,jdk.httpserver,jdk.incubator.vector,jdk.unsupported"
rm -rf .carry/runtime .carry/runtime.tgz
mkdir -p .carry
"$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-man-pages --no-header-files \
  --compress=zip-0 --output .carry/runtime
tar -C .carry -czf .carry/runtime.tgz runtime
rm -rf .carry/runtime
cp cli/target/moe4j.jar .carry/moe4j.jar
du -sh .carry/runtime.tgz .carry/moe4j.jar
