package dev.moe4j.cli;

import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.ModelFolder;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** What every command shares: how errors read, how help names values, the spelling of --device. */
class CommandLineConventionsTest {
    private final Cli.ToyModels toys = new Cli.ToyModels();
    private final List<Backend> backends = new ArrayList<>();
    private final ModelFolder.Opener recording = (folder, config, backend) -> {
        backends.add(backend);
        return toys.open(folder, config, backend);
    };
    private final String model = Cli.resource("models/mixtral").toString();

    /** Every command's path below moe4j, e.g. [bench, make-model]. */
    private static List<List<String>> commands(CommandLine parent, List<String> path) {
        var out = new ArrayList<List<String>>();
        parent.getSubcommands().forEach((name, sub) -> {
            if (name.equals("help")) {
                return;
            }
            var here = new ArrayList<>(path);
            here.add(name);
            out.add(here);
            out.addAll(commands(sub, here));
        });
        return out;
    }

    @Test
    void helpNamesEveryValueWithALabelNotAJavaFieldName() {
        Pattern fieldName = Pattern.compile("[=\\[ ]<[a-z][A-Za-z]*>");
        List<List<String>> all = commands(new CommandLine(new Main()), List.of());
        assertTrue(all.contains(List.of("bench", "make-model")), all.toString());
        for (List<String> command : all) {
            var args = new ArrayList<>(command);
            args.add("--help");
            var r = Cli.run(toys, args.toArray(String[]::new));
            assertEquals(0, r.status(), command + ": " + r.err());
            var m = fieldName.matcher(r.out());
            assertFalse(m.find(), command + " shows " + (m.hitEnd() ? "" : m.group()) + ":\n" + r.out());
        }
    }

    @Test
    void anErrorHasOnePrefixEvenWhenPicocliWritesItsOwn() {
        for (String[] args : List.of(new String[] {"generate", "--model", model},
                new String[] {"generate", "--model", model, "--prompt", "a", "--prompt-ids", "1"},
                new String[] {"score", "--model", model})) {
            var r = Cli.run(toys, args);
            assertEquals(Main.EXIT_BAD_INPUT, r.status(), r.err());
            assertTrue(r.err().startsWith("moe4j: error: "), r.err());
            assertFalse(r.err().contains("Error:"), r.err());
        }
    }

    @Test
    void deviceAutoIsAcceptedWhereverDeviceIs() {
        assumeFalse(dev.moe4j.cuda.Cuda.available(), "with a GPU, auto picks it");
        var generated = Cli.run(recording, "generate", "--device", "auto", "--model", model, "--prompt-ids", "1,20",
                "--max-tokens", "2");
        assertEquals(0, generated.status(), generated.err());
        var scored = Cli.run(recording, "score", "--device", "AUTO", "--model", model, "--prompt-ids", "1,20,30");
        assertEquals(0, scored.status(), scored.err());
        assertEquals(List.of(CpuBackend.INSTANCE, CpuBackend.INSTANCE), backends, "no GPU here: the CPU");

        var wrong = Cli.run(recording, "generate", "--device", "tpu", "--model", model, "--prompt-ids", "1");
        assertEquals(Main.EXIT_BAD_INPUT, wrong.status());
        assertEquals("moe4j: error: --device: expected cpu, cuda or auto, got 'tpu'", wrong.err().trim());
    }
}
