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

/** Runs the real command on tiny shapes: checks what it reports, never how fast (speed is for benchmarks). */
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
    void jsonReportHasEveryStrategyWithItsRatioAndTheDenseChain() {
        int status = run("bench", "moe", "--device", "cpu", "--quick", "--tokens", "16", "--hidden", "8", "--intermediate", "12",
                "--experts", "8", "--top-k", "2", "--strategies", "topk,switch,capacity,deepseek,noisy,expert-choice,soft,dense",
                "--threads", "1", "--json");
        assertEquals(0, status, err.toString());
        String json = out.toString().trim();
        assertTrue(json.startsWith("{\"benchmark\":\"moe\""), json);
        for (String key : new String[] {"\"peak_gflops\":", "\"dense_chain\":", "\"strategy\":\"topk\"",
                "\"strategy\":\"soft\"", "\"strategy\":\"dense\"", "\"ratio\":", "\"fraction_of_peak\":",
                "\"expert_matmuls\":", "\"dropped_fraction\":"}) {
            assertTrue(json.contains(key), key + " missing from " + json);
        }
        assertEquals(8, json.split("\"ratio\"").length - 1, json);
    }

    @Test
    void tableNamesTheShapeAndEachStrategy() {
        assertEquals(0, run("bench", "moe", "--device", "cpu", "--quick", "--tokens", "12", "--hidden", "8", "--intermediate", "6",
                "--experts", "4", "--top-k", "1", "--strategies", "topk,expert-choice"), err.toString());
        String text = out.toString();
        assertTrue(text.contains("tokens 12, hidden 8, intermediate 6, experts 4, top-1"), text);
        assertTrue(text.contains("dense chain") && text.contains("expert-choice") && text.contains("ratio"), text);
    }

    @Test
    void badOptionsAreOneLineErrorsWithStatusTwo() {
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--device", "cpu", "--top-k", "9", "--experts", "8"));
        assertTrue(err.toString().startsWith("moe4j: error: --top-k (9) must not exceed --experts (8)"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--device", "cpu", "--strategies", "magic"));
        assertTrue(err.toString().contains("unknown strategy 'magic'"), err.toString());
        assertEquals("", out.toString());
    }

    @Test
    void askingForCudaWithoutAGpuIsOneLineAndStatusTwo() {
        assumeFalse(Cuda.available(), "a GPU is present");
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--device", "cuda"));
        String message = err.toString().trim();
        assertTrue(message.startsWith("moe4j: error: --device cuda: no usable NVIDIA GPU: "), message);
        assertEquals(1, message.lines().count(), message);
        assertEquals("", out.toString());
    }

    @Test
    void anUnknownDeviceIsRefused() {
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--device", "tpu"));
        assertTrue(err.toString().contains("--device: expected cpu, cuda or auto, got 'tpu'"), err.toString());
    }

    @Test
    void onTheGpuTheQuickRunReportsLimitsLayerAndDecodeButNoCpuStrategies() {
        assumeTrue(Cuda.available(), "no GPU here");
        assertEquals(0, run("bench", "moe", "--device", "cuda", "--quick", "--repeats", "1"), err.toString());
        String text = out.toString();
        assertTrue(text.contains("limits, measured now: bf16 matmul") && text.contains("decode step:"), text);
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--device", "cuda", "--strategies", "topk"));
    }
}
