package dev.moe4j.cli;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.gguf.GgufModel;
import dev.moe4j.model.route.ExpertPruner;
import dev.moe4j.moe.MoeConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/** {@code moe4j prune}: a smaller checkpoint without each MoE layer's least useful experts. */
@Command(name = "prune", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Remove the least useful routed experts of every MoE layer and save a smaller checkpoint in"
                + " the model folder's format (config.json with the new number of experts and a top k no larger; the"
                + " tokenizer files copied; pruning.json saying what was kept and why).",
                "Experts are measured on calibration text, routed as trained: use (the share of tokens routed to"
                        + " each) and saliency (REAP: the mean over those tokens of the gate weight times the L2 norm of"
                        + " the expert's output). Every layer keeps the same number, its own best; with expert groups"
                        + " (DeepSeek's n_group) each group keeps an equal share.",
                "The pruned model computes what the original does with the removed experts masked"
                        + " (--expert-mask), so 'moe4j route-eval ORIGINAL --policy mask=...' shows the cost before"
                        + " pruning. GGUF files and pre-quantised folders are not pruned yet."})
final class PruneCommand implements Callable<Integer>, CommandContext.User {
    @Parameters(index = "0", paramLabel = "MODEL", description = "model folder (config.json, safetensors weights)")
    Path model;

    @Option(names = "--keep", required = true, paramLabel = "FRACTION|N",
            description = "experts each MoE layer keeps: a fraction of them (0.75) or a number (6)")
    String keep;

    @Option(names = "--calibration", required = true, paramLabel = "DATA", description = "calibration text file")
    Path calibration;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "folder for the pruned checkpoint"
            + " (must not exist, or be empty)")
    Path out;

    @Option(names = "--by", paramLabel = "saliency|use|contribution", defaultValue = "saliency",
            description = "what ranks the experts: saliency (default; REAP), use, or contribution (use x saliency)")
    String by;

    @Option(names = "--tokens", paramLabel = "N", defaultValue = "8192",
            description = "calibration tokens to use, from the start of the text (default: ${DEFAULT-VALUE})")
    int tokens;

    @Option(names = "--context", paramLabel = "N",
            description = "tokens per window of the calibration text (default: 512, or the model's context if"
                    + " shorter)")
    Integer window;

    @Mixin
    DeviceOption device;

    @Spec
    CommandSpec spec;

    private CommandContext context;

    @Override
    public void context(CommandContext context) {
        this.context = context;
    }

    @Override
    public Integer call() {
        ExpertPruner.Rank rank = switch (by.trim().toLowerCase(Locale.ROOT)) {
            case "saliency" -> ExpertPruner.Rank.SALIENCY;
            case "use" -> ExpertPruner.Rank.USE;
            case "contribution" -> ExpertPruner.Rank.CONTRIBUTION;
            default -> throw new BadInputException("--by " + BadInputException.quote(by) + ": expected saliency, use or"
                    + " contribution");
        };
        if (tokens < 1 || (window != null && window < 1)) {
            throw new BadInputException("--tokens and --context must be at least 1");
        }
        if (GgufModel.isGguf(model)) {
            throw new BadInputException(model + ": prune writes model folders; GGUF files are not pruned yet (prune"
                    + " the folder it was converted from, then convert --to gguf)");
        }
        checkOut(out);
        String text = TextFile.read("--calibration", calibration);
        PrintWriter o = spec.commandLine().getOut();
        ExpertPruner.Plan plan;
        MoeConfig moe;
        try (ModelFolder m = ModelFolder.open(model, context.models().with(device.loadOptions()), device::backend)) {
            if (!(m.model() instanceof TransformerModel transformer)) {
                throw new BadInputException(model + ": prune needs a checkpoint moe4j runs itself");
            }
            moe = m.config().moe().orElseThrow(() -> new BadInputException(model + ": no MoE layers to prune"));
            int n = ExpertPruner.keepCount(keep, moe.experts(), moe.groupLimit().groups());
            int[] ids = m.tokenizer().encodeIds(text, true);
            ids = Arrays.copyOf(ids, Math.min(ids.length, tokens));
            int length = window != null ? window : Math.min(512, m.config().maxPositions());
            plan = ExpertPruner.plan(ExpertPruner.measure(transformer, ids, length), n, rank, moe);
            o.printf(Locale.ROOT, "calibrated on %d tokens of %s; keeping %d of %d experts per MoE layer by %s%n",
                    ids.length, calibration, n, moe.experts(), rank.name().toLowerCase(Locale.ROOT));
        }
        ExpertPruner.save(model, plan, out);
        ObjectNode report = report(plan, moe);
        AtomicFiles.writeString(out.resolve("pruning.json"), Json.pretty(report) + "\n");
        for (ExpertPruner.LayerScores s : plan.scores()) {
            int[] kept = plan.kept().get(s.layer());
            var line = new StringBuilder(String.format(Locale.ROOT, "layer %d removed", s.layer()));
            for (int x = 0; x < moe.experts(); x++) {
                if (Arrays.binarySearch(kept, x) < 0) {
                    line.append(String.format(Locale.ROOT, "  %d (use %.1f%%, saliency %.4f)", x, 100 * s.use(x),
                            s.saliency()[x]));
                }
            }
            o.println(line);
        }
        o.printf(Locale.ROOT, "saved %s: %.1f MB of weights (was %.1f MB); see pruning.json%n", out,
                weightBytes(out) / 1e6, weightBytes(model) / 1e6);
        o.flush();
        return 0;
    }

    private static void checkOut(Path out) {
        if (Files.exists(out)) {
            boolean empty;
            try (Stream<Path> files = Files.list(out)) {
                empty = files.findAny().isEmpty();
            } catch (IOException e) {
                empty = false;
            }
            if (!empty) {
                throw new BadInputException("--out " + out + ": exists and is not an empty folder; choose another");
            }
        }
    }

    static ObjectNode report(ExpertPruner.Plan plan, MoeConfig moe) {
        ObjectNode o = Json.mapper().createObjectNode();
        o.put("rank", plan.rank().name().toLowerCase(Locale.ROOT));
        o.put("experts_before", moe.experts());
        o.put("experts_after", plan.keep());
        ArrayNode layers = o.putArray("layers");
        for (ExpertPruner.LayerScores s : plan.scores()) {
            ObjectNode l = layers.addObject();
            l.put("layer", s.layer());
            l.put("calibration_tokens", s.routed());
            ArrayNode kept = l.putArray("kept");
            Arrays.stream(plan.kept().get(s.layer())).forEach(kept::add);
            ArrayNode use = l.putArray("use");
            ArrayNode saliency = l.putArray("saliency");
            for (int x = 0; x < moe.experts(); x++) {
                use.add(s.use(x));
                saliency.add(s.saliency()[x]);
            }
        }
        o.put("mask_equivalent", plan.asMask(moe.experts()).toString());
        return o;
    }

    private static long weightBytes(Path folder) {
        try (Stream<Path> files = Files.list(folder)) {
            return files.filter(f -> f.getFileName().toString().startsWith("model")
                    && f.toString().endsWith(".safetensors")).mapToLong(f -> f.toFile().length()).sum();
        } catch (IOException e) {
            return 0;
        }
    }
}
