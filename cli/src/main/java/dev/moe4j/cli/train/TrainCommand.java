package dev.moe4j.cli.train;

import dev.moe4j.cli.DeviceOption;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.cuda.Precision;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.train.TrainingRun;
import dev.moe4j.train.checkpoint.RunCheckpoint;
import dev.moe4j.train.checkpoint.RunLock;
import dev.moe4j.train.config.ConfigFile;
import dev.moe4j.train.config.Setting;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.config.TrainSettings;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.ArgGroupSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

/**
 * {@code moe4j train}: trains an MoE language model. Its options are not declared here but generated from the train
 * module's {@link TrainSettings}, the one list that flags, config files and saved runs share.
 */
@Command(name = "train",
        mixinStandardHelpOptions = true,
        usageHelpWidth = 110,
        sortOptions = false,
        // The settings are too many for picocli's synopsis of every option; the groups below list them.
        customSynopsis = "moe4j train [-hV] [--config=FILE] [--precision=PRECISION] [--overwrite] "
                + "[--SETTING[=VALUE]]...",
        modelTransformer = TrainCommand.Options.class,
        description = {"Trains a mixture-of-experts language model (on the CPU, or on an NVIDIA GPU with --device) and "
                + "saves it as a Hugging Face model "
                + "folder (config.json, model.safetensors, tokenizer.json) that moe4j generate/chat/score load.",
                "",
                "With no options it trains a small MoE on the bundled Shakespeare (data/shakespeare) in a few minutes: "
                        + "a byte-level BPE is trained first (cached), then the model; it shows a progress bar, "
                        + "evaluates on the validation text, prints samples and saves runs/shakespeare-moe.",
                "",
                "Every option below can also be set in a JSON or YAML file given with --config, under the same name "
                        + "without dashes (e.g. top-k: 2); flags override the file. Switches take an optional "
                        + "true/false (--shuffle false)."})
public final class TrainCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandSpec spec;

    @Option(names = "--config", paramLabel = "FILE", order = -1,
            description = "A JSON or YAML file of options, with the same keys as the flags; flags override it.")
    Path configFile;

    // A flag of the command line, not a setting of the run: how a GPU computes does not change what the run is
    // (a run may resume in another precision, as on another device).
    @Option(names = "--precision", paramLabel = "PRECISION", order = -1, description = DeviceOption.PRECISION_HELP)
    String precision;

    // Also a flag of the command line only: it says what this invocation may destroy, not what the run is, so it is
    // neither saved with the run nor read from config files.
    @Option(names = "--overwrite", order = -1,
            description = "Replace a run already saved in the output folder; without it, training into a saved run "
                    + "is refused (continue it with --resume, or choose another --name).")
    boolean overwrite;

    /** Adds one option per {@link Setting}, grouped under the headings of its {@link Setting.Group}. */
    public static final class Options implements CommandLine.IModelTransformer {
        @Override
        public CommandSpec transform(CommandSpec spec) {
            int order = 0;
            for (Setting.Group group : Setting.Group.values()) {
                var g = ArgGroupSpec.builder().heading("%n" + group.heading() + ":%n").exclusive(false)
                        .multiplicity("0..1").validate(false);
                for (Setting s : TrainSettings.ALL) {
                    if (s.group() != group) {
                        continue;
                    }
                    var o = OptionSpec.builder("--" + s.key()).type(String.class).order(order++)
                            // picocli formats descriptions: a literal percent sign is written %%
                            .description(help(s).replace("%", "%%"));
                    if (s.isSwitch()) {
                        // Typed Boolean, picocli takes the next argument as the switch's value only when it is true
                        // or false: "--tiny --foo=1" then reads --foo=1 as the (unknown) option it is.
                        o.type(Boolean.class).arity("0..1").fallbackValue("true").paramLabel("true|false");
                    } else {
                        o.arity("1").paramLabel(s.label());
                    }
                    g.addArg(o.build());
                }
                spec.addArgGroup(g.build());
            }
            return spec;
        }

        /**
         * The setting's sentence with its default, as the other commands write it ("Decoder layers (default: 4).");
         * nothing is added when there is no default value or the sentence already says what happens by default.
         */
        static String help(Setting s) {
            String text = s.description();
            if (s.defaultValue().isEmpty() || text.toLowerCase(java.util.Locale.ROOT).contains("default")) {
                return text;
            }
            boolean sentence = text.endsWith(".") && !text.endsWith("...");
            return (sentence ? text.substring(0, text.length() - 1) : text) + " (default: " + s.defaultValue() + ")"
                    + (sentence ? "." : "");
        }
    }

    /**
     * --device: cpu, cuda (a one-line error without a GPU), or auto (the GPU when the driver finds one and runs the
     * model's MoE options; a Soft MoE router or router jitter keeps an automatic choice on the CPU). --precision
     * (null when left out: BF16 on a GPU) as {@link DeviceOption} takes it.
     */
    static Backend backend(String device, String precision, Optional<MoeConfig> moe) {
        Precision p = precision == null ? null : Precision.parse("--precision", precision);
        return switch (device) {
            case "cpu" -> DeviceOption.cpu(p);
            case "cuda" -> DeviceOption.gpu("--device cuda", p);
            default -> Cuda.available() && moe.map(MoeLayer::unsupportedOnDevice).orElse(List.of()).isEmpty()
                    ? DeviceOption.gpu("--device", p) : DeviceOption.cpu(p);
        };
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        var parsed = spec.commandLine().getParseResult();
        Map<String, String> flags = new LinkedHashMap<>();
        for (Setting s : TrainSettings.ALL) {
            OptionSpec o = spec.findOption("--" + s.key());
            if (parsed.hasMatchedOption(o)) {
                Object value = parsed.matchedOption("--" + s.key()).getValue(); // String, or Boolean for a switch
                flags.put(s.key(), value.toString());
            }
        }
        Map<String, String> file = configFile == null ? Map.of() : ConfigFile.read(configFile);
        Map<String, String> values = TrainSettings.resolve(file, flags);
        TrainConfig config = TrainConfig.parse(values);
        if (config.run().resume()) {
            if (overwrite) {
                throw new BadInputException("--resume continues the saved run and --overwrite replaces it: give one "
                        + "of them");
            }
            Path folder = config.run().out();
            // Read under the run's lock: a run still training there may be halfway through replacing its folder.
            try (var lock = RunLock.acquire(folder)) {
                if (!RunCheckpoint.exists(folder)) {
                    throw new BadInputException("--resume: " + folder + " holds no saved run (name it with --out or "
                            + "--name)");
                }
                var given = new LinkedHashMap<>(file);
                given.putAll(flags);
                var saved = RunCheckpoint.settings(folder);
                var merged = TrainSettings.resumed(saved, given, folder.resolve(RunCheckpoint.TRAIN_CONFIG).toString());
                merged.put("out", folder.toString());
                config = TrainConfig.parse(merged);
            }
        }
        // On a terminal the progress is one line redrawn in place; in a log, a line every --log-every steps.
        boolean terminal = System.console() != null && System.console().isTerminal();
        var progress = new TrainProgress(out, terminal, config.run().logEvery());
        TrainingRun.Summary summary = TrainingRun.run(config, progress,
                backend(config.run().device(), precision, config.model().flatMap(ModelConfig::moe)),
                overwrite ? TrainingRun.ExistingRun.REPLACE : TrainingRun.ExistingRun.REFUSE);
        progress.finish(summary);
        err.flush();
        return 0;
    }
}
