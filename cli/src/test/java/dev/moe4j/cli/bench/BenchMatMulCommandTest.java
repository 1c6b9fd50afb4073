package dev.moe4j.cli.bench;

import dev.moe4j.cli.Main;
import dev.moe4j.core.Parallel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs the real command on tiny sizes: checks what it reports, never how fast (speed is for benchmarks). */
class BenchMatMulCommandTest {
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
    void jsonReportHasLimitsAndBothRegimesForEachWeightType() {
        int status = run("bench", "matmul", "--quick", "--size", "48", "--tokens", "20", "--dtypes", "f32,bf16,F16",
                "--threads", "1", "--gradients", "--json");
        assertEquals(0, status, err.toString());
        String json = out.toString().trim();
        assertTrue(json.startsWith("{\"benchmark\":\"matmul\""), json);
        for (String key : new String[] {"\"peak_gflops\":", "\"bandwidth_gbs\":", "\"decode\":[", "\"prefill\":[",
                "\"fraction_of_bandwidth\":", "\"fraction_of_peak\":", "\"dtype\":\"F16\"", "\"threads\":1",
                "\"gradients\":[", "\"product\":\"dW\"", "\"disturbed\":"}) {
            assertTrue(json.contains(key), key + " missing from " + json);
        }
        assertEquals(3, json.split("\"weight_gbs\"").length - 1, json);
        assertEquals(3 + 3 + 1, json.split("\"gflops\"").length - 1, json); // prefill, dx per type, one dW
    }

    @Test
    void tableNamesTheShapesAndTheRatios() {
        assertEquals(0, run("bench", "matmul", "--quick", "--size", "32", "--tokens", "17", "--dtypes", "BF16"), err.toString());
        String text = out.toString();
        assertTrue(text.contains("decode: x[1, 32] · W[32, 32]ᵀ"), text);
        assertTrue(text.contains("prefill: x[17, 32] · W[32, 32]ᵀ"), text);
        assertTrue(text.contains("% of bandwidth") && text.contains("% of peak"), text);
    }

    @Test
    void badOptionsAreOneLineErrorsWithStatusTwo() {
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "matmul", "--threads", "0"));
        assertTrue(err.toString().startsWith("moe4j: error: --threads must be at least 1, got 0"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "matmul", "--dtypes", "F64"));
        assertTrue(err.toString().contains("expected F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MXFP4 or F8_E4M3_B32, got 'F64'"), err.toString());
        assertEquals("", out.toString());
    }

    @Test
    void benchAloneListsItsSubcommands() {
        assertEquals(0, run("bench"));
        assertTrue(out.toString().contains("matmul"), out.toString());
    }
}
