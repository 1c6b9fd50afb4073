package dev.moe4j.cli.bench;

import dev.moe4j.cli.Main;
import dev.moe4j.core.Parallel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
        int status = run("bench", "moe", "--quick", "--tokens", "16", "--hidden", "8", "--intermediate", "12",
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
        assertEquals(0, run("bench", "moe", "--quick", "--tokens", "12", "--hidden", "8", "--intermediate", "6",
                "--experts", "4", "--top-k", "1", "--strategies", "topk,expert-choice"), err.toString());
        String text = out.toString();
        assertTrue(text.contains("tokens 12, hidden 8, intermediate 6, experts 4, top-1"), text);
        assertTrue(text.contains("dense chain") && text.contains("expert-choice") && text.contains("ratio"), text);
    }

    @Test
    void badOptionsAreOneLineErrorsWithStatusTwo() {
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--top-k", "9", "--experts", "8"));
        assertTrue(err.toString().startsWith("moe4j: error: --top-k (9) must not exceed --experts (8)"), err.toString());
        err.getBuffer().setLength(0);
        assertEquals(Main.EXIT_BAD_INPUT, run("bench", "moe", "--strategies", "magic"));
        assertTrue(err.toString().contains("unknown strategy 'magic'"), err.toString());
        assertEquals("", out.toString());
    }
}
