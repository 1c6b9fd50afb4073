package dev.moe4j.cli.bench;

import dev.moe4j.cli.Main;
import dev.moe4j.core.Parallel;
import dev.moe4j.cuda.Cuda;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** `moe4j bench moe` on tiny shapes: what it reports and how it refuses, never how fast. */
class BenchMoeCommandTest {
    private final int threads = Parallel.threads();
    private final StringWriter out = new StringWriter(), err = new StringWriter();

    @AfterEach
    void restoreThreads() {
        Parallel.setThreads(threads);
    }

    private int run(String... args) {
        return Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
    }

    @Test
    void onTheCpuEveryStrategyGetsARowAgainstItsMatmuls() {
        int status = run("bench", "moe", "--device", "cpu", "--quick", "--tokens", "16", "--hidden", "16",
                "--intermediate", "24", "--repeats", "1", "--threads", "1");
        assertEquals(0, status, err.toString());
        String text = out.toString();
        assertTrue(text.contains("layer: 16 tokens, H 16, I 24, E 8, top-2, f32"), text);
        assertTrue(text.contains("top-k (Mixtral") && text.contains("expert choice") && text.contains("soft moe"), text);
    }

    @Test
    void askingForCudaWithoutAGpuIsOneLineAndStatusTwo() {
        assumeFalse(Cuda.available(), "a GPU is present");
        assertEquals(2, run("bench", "moe", "--device", "cuda"));
        String message = err.toString().trim();
        assertTrue(message.startsWith("moe4j: error: --device cuda: no usable NVIDIA GPU: "), message);
        assertEquals(1, message.lines().count(), message);
        assertEquals("", out.toString());
    }

    @Test
    void anUnknownDeviceIsRefused() {
        assertEquals(2, run("bench", "moe", "--device", "tpu"));
        assertTrue(err.toString().contains("--device: expected cpu or cuda, got 'tpu'"), err.toString());
    }

    @Test
    void onTheGpuTheQuickRunReportsLimitsLayerAndDecode() {
        assumeTrue(Cuda.available(), "no GPU here");
        assertEquals(0, run("bench", "moe", "--device", "cuda", "--quick", "--repeats", "1"), err.toString());
        String text = out.toString();
        assertTrue(text.contains("limits, measured now: bf16 matmul") && text.contains("decode step:"), text);
    }
}
