package dev.moe4j.cli;

import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.testing.ToyModel;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Runs the real command line in-process, with the given standard input and model opener. */
final class Cli {
    private Cli() {
    }

    record Result(int status, String out, String err) {
    }

    /** The toy models a run opened, so that tests can see what was fed to them. */
    static final class ToyModels implements ModelFolder.Opener {
        final List<ToyModel> opened = new ArrayList<>();

        @Override
        public ToyModel open(Path folder, dev.moe4j.model.config.ModelConfig config,
                             dev.moe4j.core.backend.Backend backend) {
            var model = new ToyModel(config.vocabSize(), config.maxPositions(), config.numLayers());
            opened.add(model);
            return model;
        }

        ToyModel last() {
            return opened.getLast();
        }
    }

    static Result run(ModelFolder.Opener models, String stdin, boolean terminal, String... args) {
        var out = new StringWriter();
        var err = new StringWriter();
        var in = new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8));
        int status = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true),
                new CommandContext(in, terminal, models));
        return new Result(status, out.toString(), err.toString());
    }

    static Result run(ModelFolder.Opener models, String... args) {
        return run(models, "", false, args);
    }

    static Path resource(String name) {
        try {
            return Path.of(Cli.class.getClassLoader().getResource(name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("missing test resource " + name, e);
        }
    }

    /** A writable copy of a test model folder. */
    static Path copyModel(String name, Path into) {
        Path source = resource("models/" + name);
        Path target = into.resolve(name);
        try (var files = Files.list(source)) {
            Files.createDirectories(target);
            for (Path f : files.toList()) {
                Files.copy(f, target.resolve(f.getFileName()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return target;
    }

    /** The files in a folder, to check that nothing was left behind. */
    static List<String> listing(Path dir) {
        try (var files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
