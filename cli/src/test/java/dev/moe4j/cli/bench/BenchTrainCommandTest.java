package dev.moe4j.cli.bench;

import dev.moe4j.cli.Main;
import dev.moe4j.core.Parallel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs {@code moe4j bench train --quick} (a tiny model): checks what it reports, never how fast. */
class BenchTrainCommandTest {
    private final int threads = Parallel.threads();
    private final StringWriter out = new StringWriter(), err = new StringWriter();

    @AfterEach
    void restoreThreads() {
        Parallel.setThreads(threads);
    }

    @Test
    void reportsTokensPerSecondAndMfuAgainstThePeakMeasuredInTheSameRun() {
        int status = Main.run(new String[] {"bench", "train", "--quick", "--threads", "1", "--steps", "1"},
                new PrintWriter(out, true), new PrintWriter(err, true));
        assertEquals(0, status, err.toString());
        String text = out.toString();
        assertTrue(text.contains("model: 2 layers, d=64, 4 heads, 4 experts top-2 of width 128"), text);
        assertTrue(text.contains("tokens/s") && text.contains("MFU: "), text);
        assertTrue(text.contains("peak FMA rate, measured now with 1 threads"), text);
    }

    @Test
    void jsonHasTheFigures() {
        int status = Main.run(new String[] {"bench", "train", "--quick", "--threads", "1", "--steps", "1", "--json"},
                new PrintWriter(out, true), new PrintWriter(err, true));
        assertEquals(0, status, err.toString());
        String json = out.toString().trim();
        for (String key : new String[] {"\"benchmark\":\"train\"", "\"tokens_per_s\":", "\"mfu\":", "\"peak_gflops\":",
                "\"active_parameters\":", "\"load_average\":"}) {
            assertTrue(json.contains(key), key + " missing from " + json);
        }
    }
}
