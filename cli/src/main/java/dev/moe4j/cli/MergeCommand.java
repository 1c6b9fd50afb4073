package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.model.lora.AdapterMerge;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.Callable;

/** {@code moe4j merge BASE ADAPTER --out DIR}: a LoRA adapter merged into its base model's weights. */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = {"Merge a LoRA adapter in PEFT's format into its base model: each adapted weight becomes"
                + " W + (lora_alpha / r) * B * A (per expert for adapters on experts), computed in float32, and the"
                + " result is written as a Hugging Face model folder of the base's family (with the base's tokenizer"
                + " and generation files), as PEFT's merge_and_unload and save_pretrained would. The folder is written"
                + " under a temporary name and moved into place when complete."})
public final class MergeCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "BASE", description = "the base model folder (config.json and safetensors)")
    Path base;

    @Parameters(index = "1", paramLabel = "ADAPTER", description = "the adapter folder (adapter_config.json and "
            + "adapter_model.safetensors), e.g. a `moe4j train --lora-rank` run")
    Path adapter;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "the folder to write (must not exist)")
    Path out;

    @Option(names = "--dtype", paramLabel = "DTYPE", description = "the merged weights' type: f32, bf16 or f16 "
            + "(default: the base's)")
    String dtype;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        Optional<DType> type = Optional.ofNullable(dtype).map(d -> switch (d.toLowerCase(Locale.ROOT)) {
            case "f32", "float32" -> DType.F32;
            case "bf16", "bfloat16" -> DType.BF16;
            case "f16", "float16" -> DType.F16;
            default -> throw new BadInputException("--dtype: expected f32, bf16 or f16, got '" + d + "'");
        });
        long start = System.nanoTime();
        AdapterMerge.Result r = AdapterMerge.merge(base, adapter, out, type);
        PrintWriter err = spec.commandLine().getErr();
        err.printf(Locale.ROOT, "moe4j: wrote %s: %d adapters merged into %d tensors (%s); %.1f s%n", out, r.adapters(),
                r.tensorsMerged(), r.dtype().name(), (System.nanoTime() - start) / 1e9);
        err.flush();
        return 0;
    }
}
