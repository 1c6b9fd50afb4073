package dev.moe4j.cli;

import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.ModelFolder;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --precision bf16|f32} on the CPU path (CI has no GPU): the CPU computes in F32 whatever is asked, so f32 runs
 * as it always does and bf16, which it cannot honour, is a one-line error before any weight is opened.
 */
class PrecisionOptionTest {
    private final Cli.ToyModels toys = new Cli.ToyModels();
    private final List<Backend> backends = new ArrayList<>();
    /** The toy models, recording the backend each model is opened on. */
    private final ModelFolder.Opener recording = (folder, config, backend) -> {
        backends.add(backend);
        return toys.open(folder, config, backend);
    };
    private final String model = Cli.resource("models/mixtral").toString();

    @Test
    void f32OnTheCpuRunsOnTheCpuAsAlways() {
        var r = Cli.run(recording, "generate", "--device", "cpu", "--precision", "f32", "--model", model,
                "--prompt-ids", "1,20,30", "--max-tokens", "3");
        assertEquals(0, r.status(), r.err());
        assertEquals(List.of(CpuBackend.INSTANCE), backends);
    }

    @Test
    void bf16OnTheCpuIsOneLineBeforeAnyWeightIsOpened() {
        for (List<String> command : List.of(List.of("generate", "--max-tokens", "3"), List.of("score"))) {
            var args = new ArrayList<>(command);
            args.addAll(List.of("--device", "cpu", "--precision", "bf16", "--model", model, "--prompt-ids", "1,20,30"));
            var r = Cli.run(recording, args.toArray(String[]::new));
            assertEquals(Main.EXIT_BAD_INPUT, r.status(), command + ": " + r.err());
            assertTrue(r.err().startsWith("moe4j: error: --precision bf16: the CPU computes in F32"), r.err());
            assertEquals(1, r.err().trim().lines().count(), r.err());
            assertEquals("", r.out());
        }
        assertTrue(backends.isEmpty(), "no model opened");
    }

    @Test
    void anUnknownPrecisionIsOneLineNamingTheChoices() {
        var r = Cli.run(recording, "generate", "--device", "cpu", "--precision", "fp8", "--model", model,
                "--prompt-ids", "1", "--max-tokens", "1");
        assertEquals(Main.EXIT_BAD_INPUT, r.status(), r.err());
        assertEquals("moe4j: error: --precision: expected bf16 or f32, got 'fp8'", r.err().trim());
        assertTrue(backends.isEmpty(), "no model opened");
    }

    @Test
    void everyCommandThatTakesADeviceTakesAPrecision() {
        for (List<String> command : List.of(List.of("generate"), List.of("chat"), List.of("score"), List.of("serve"),
                List.of("train"), List.of("bench", "generate"), List.of("bench", "moe"))) {
            var args = new ArrayList<>(command);
            args.add("--help");
            var r = Cli.run(Main.DEFAULT_MODELS, args.toArray(String[]::new));
            assertEquals(0, r.status(), command + ": " + r.err());
            String help = r.out().replaceAll("\\s+", " ");
            assertTrue(help.contains("--device"), command + " takes --device");
            assertTrue(help.contains("--precision") && help.contains("The CPU always computes in F32"),
                    command + " takes --precision: " + r.out());
        }
    }

    @Test
    void theCpuBackendIsTheOneForF32OrNoPrecision() {
        assertSame(CpuBackend.INSTANCE, DeviceOption.cpu(null));
        assertSame(CpuBackend.INSTANCE, DeviceOption.cpu(dev.moe4j.cuda.Precision.F32));
    }
}
