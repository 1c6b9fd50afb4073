package dev.moe4j.core.perf;

import dev.moe4j.core.Parallel;
import jdk.incubator.vector.FloatVector;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What a benchmark ran on, recorded beside its figures: the CPU, how many threads moe4j used, the vector width
 * the kernels got, the Java version, and the load average when it started (others sharing the machine make
 * every figure lower, so a report says how busy it was).
 *
 * @param cpu         the CPU model as the OS names it ("unknown" when it does not say)
 * @param processors  processors available to the JVM
 * @param threads     moe4j's worker threads
 * @param vectorBits  width of the preferred float vector (512 with AVX-512)
 * @param java        the Java runtime version
 * @param loadAverage the one-minute system load average, negative when unavailable
 */
public record Environment(String cpu, int processors, int threads, int vectorBits, String java, double loadAverage) {
    public static Environment current() {
        return new Environment(cpuModel(), Runtime.getRuntime().availableProcessors(), Parallel.threads(),
                FloatVector.SPECIES_PREFERRED.vectorBitSize(), Runtime.version().toString(),
                ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
    }

    /** One line for a report. */
    public String describe() {
        return cpu + ", " + processors + " processors; " + threads + " threads; " + vectorBits + "-bit vectors; Java "
                + java + (loadAverage >= 0 ? String.format("; load average %.2f", loadAverage) : "");
    }

    private static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or not readable: the model is simply not known
        }
        return "unknown";
    }
}
