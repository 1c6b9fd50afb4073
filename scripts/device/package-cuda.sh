#!/usr/bin/env bash
# Packs what the GPU checks need on the device machine (which has no JDK and no Maven) into one folder: a jlinked
# Java 25 runtime, the moe4j jar, the test classes the GPU tests use (the cuda module's, and the reference readers of
# the core, model and train tests, without their fixtures: the checkout on the device holds those), the JUnit console
# launcher, and the scripts that run tests and benchmarks there (scripts/device/gpu-check.sh).
# Usage: scripts/device/package-cuda.sh [DEST]   (DEST defaults to .carry/cuda; carry it and run DEST/gpu-check.sh
#        from the checkout's root on the device machine)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:-$root/.carry/cuda}"
jdk="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
export JAVA_HOME="$jdk"
cd "$root"
mvn -B -q -DskipTests package -pl cli -am >/dev/null
mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4 \
  -DoutputDirectory="$root/cuda/target/launcher" >/dev/null
rm -rf "$dest" && mkdir -p "$dest"
# What the jar's commands use, and no more: java.desktop holds java.beans, which Jinjava (chat templates) needs;
# its graphics libraries are left out. java.net.http is bench serve's client: picocli loads every command's class at
# start, so without it no command runs.
"$jdk/bin/jlink" --add-modules java.base,java.logging,java.management,java.sql,java.xml,java.desktop,jdk.incubator.vector,jdk.unsupported,jdk.zipfs,jdk.jfr,jdk.httpserver,java.net.http \
  --strip-debug --no-man-pages --no-header-files \
  --exclude-files='**/libawt*.so,**/libfontmanager.so,**/libjavajpeg.so,**/libmlib_image.so,**/liblcms.so,**/libsplashscreen.so,**/libjsound.so,**/libfreetype.so' \
  --output "$dest/runtime"
# The jar goes into the same archive stored, not deflated: xz then packs it into about half of the deflated jar's
# size, which keeps the tree, the fixtures and this folder under the device's 64 MiB transfer limit.
rm -rf "$dest/unpacked" && mkdir -p "$dest/unpacked"
(cd "$dest/unpacked" && "$jdk/bin/jar" --extract --file "$root/cli/target/moe4j.jar")
"$jdk/bin/jar" --create --no-compress --file "$dest/moe4j.jar" --manifest "$dest/unpacked/META-INF/MANIFEST.MF" \
  -C "$dest/unpacked" .
rm -rf "$dest/unpacked"
tar -C "$dest" -cJf "$dest/runtime.txz" runtime moe4j.jar
rm -rf "$dest/runtime" "$dest/moe4j.jar"
# Test classes only: fixtures come from the checkout (model/src/test/resources) on the device.
for m in core cuda model train; do
  "$jdk/bin/jar" --create --file "$dest/$m-tests.jar" -C "$m/target/test-classes" dev
done
cp cuda/target/launcher/junit-platform-console-standalone-*.jar "$dest/junit-console.jar"
cp scripts/device/gpu-check.sh scripts/device/gpu-decode.sh scripts/device/gpu-graphs.sh scripts/device/moe_baselines.py "$dest/"
du -sh "$dest"/* "$dest"
