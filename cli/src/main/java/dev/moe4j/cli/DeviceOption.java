package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.cuda.Precision;
import dev.moe4j.model.LoadOptions;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.gguf.GgufFileType;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeLayer;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;

/**
 * {@code --device cpu|cuda|auto} and {@code --precision bf16|f32} (a picocli mixin): where a command runs and, on a
 * GPU, in what precision. Left out (or auto), the GPU is taken when the CUDA driver finds one, else the CPU;
 * {@code --device cuda} without a usable GPU is a one-line error. The GPU computes in BF16 unless told f32; the CPU
 * always computes in F32 (weights as stored), so {@code --precision bf16} with the CPU is a one-line error rather
 * than a silent no-op.
 */
public final class DeviceOption {
    /** Where moe4j computes. */
    public enum Device {
        CPU, CUDA
    }

    @Option(names = "--device", paramLabel = "DEVICE",
            description = "cpu, cuda or auto (the default: cuda when an NVIDIA GPU and its driver are found, else "
                    + "cpu).")
    String device;

    /** --precision's help, shared with {@code moe4j train}. */
    public static final String PRECISION_HELP = "How the GPU computes: bf16 (BF16 weights and activations, F32 "
            + "accumulation; the default) or f32 (F32 throughout: float32's accuracy, twice the weights' memory, "
            + "slower). The CPU always computes in F32; bf16 there is an error.";

    @Option(names = "--precision", paramLabel = "PRECISION", description = PRECISION_HELP)
    String precision;

    @Option(names = "--mmap", description = "On the CPU, keep the weights in the memory-mapped checkpoint files "
            + "instead of copying them into memory (the default when they fit in the available memory: decoding "
            + "reads them 2-3x faster there). Starts faster and shares pages between processes.")
    boolean mmap;

    @Option(names = "--quantize", paramLabel = "TYPE",
            description = "Quantise a safetensors model's matrices as they are loaded, in memory, to the types "
                    + "`moe4j convert --to gguf --type TYPE` gives them (llama.cpp's rules): q8_0, q4_0, q4_k_m, "
                    + "q5_k_m, q6_k or mxfp4_moe. CPU only; a GGUF file keeps its own types.")
    String quantize;

    @Option(names = "--adapter", paramLabel = "DIR",
            description = "A LoRA adapter in PEFT's format (adapter_config.json, adapter_model.safetensors; what "
                    + "`moe4j train --lora-rank` saves) applied to the model's weights: kept beside them, not merged, so "
                    + "the weights stay as stored (memory-mapped, quantised). CPU only for now.")
    java.nio.file.Path adapter;

    /** Where a CPU model's weights live: mapped with --mmap, otherwise copied when they fit. */
    public WeightMemory weightMemory() {
        return mmap ? WeightMemory.MAPPED : WeightMemory.AUTO;
    }

    /**
     * How a CPU model's weights are held: {@link #weightMemory()}, quantised as loaded with --quantize, with the LoRA
     * adapter of --adapter beside them.
     */
    public LoadOptions loadOptions() {
        LoadOptions options = quantizedOptions();
        return adapter == null ? options : options.withAdapter(adapter);
    }

    private LoadOptions quantizedOptions() {
        if (quantize == null) {
            return LoadOptions.of(weightMemory());
        }
        GgufFileType type = GgufFileType.parse(quantize, "--quantize");
        if (!type.isQuantized()) {
            throw new BadInputException("--quantize: expected a quantised type (q8_0, q4_0, q4_k_m, q5_k_m, q6_k or "
                    + "mxfp4_moe), got '" + quantize + "'; the weights keep their stored type without it");
        }
        if (mmap) {
            throw new BadInputException("--quantize and --mmap: quantised weights are held in memory, not in the "
                    + "mapped files; leave out one of them");
        }
        return new LoadOptions(WeightMemory.COPIED, java.util.Optional.of(type));
    }

    /** The device asked for, or the automatic choice. */
    public Device resolve() {
        if (automatic()) {
            return Cuda.available() ? Device.CUDA : Device.CPU;
        }
        return switch (device.toLowerCase(Locale.ROOT)) {
            case "cpu" -> Device.CPU;
            case "cuda", "gpu" -> {
                if (!Cuda.available()) {
                    Cuda.require("--device cuda", Precision.BF16); // throws the one-line reason
                }
                yield Device.CUDA;
            }
            default -> throw new BadInputException("--device: expected cpu, cuda or auto, got '" + device + "'");
        };
    }

    /** --device left out or auto (as moe4j train spells its default). */
    private boolean automatic() {
        return device == null || device.equalsIgnoreCase("auto");
    }

    /** The precision asked for with --precision, or null when left out (BF16 on a GPU). */
    public Precision precision() {
        return precision == null ? null : Precision.parse("--precision", precision);
    }

    /**
     * The backend a model of {@code config} runs on: the one asked for, or left out, the GPU when there is one and
     * it runs the model's MoE options (else the CPU). Asked for explicitly, a GPU that cannot run them is an error
     * naming what it lacks.
     */
    public Backend backend(ModelConfig config) {
        Device d = resolve();
        Precision p = precision();
        if (d == Device.CPU || (adapter != null && automatic())) {
            // LoRA adapters run on the CPU for now: the automatic choice takes it; --device cuda is refused at load.
            return cpu(p);
        }
        List<String> missing = config.moe().map(MoeLayer::unsupportedOnDevice).orElse(List.of());
        if (!missing.isEmpty()) {
            if (automatic()) {
                return cpu(p);
            }
            throw new BadInputException("--device cuda: this model's MoE layers use " + String.join(" and ", missing)
                    + ", which the GPU does not run yet; use --device cpu");
        }
        return gpu("--device cuda", p);
    }

    /** The CPU, which computes in F32 whatever the weights' dtype: {@code --precision bf16} cannot be honoured there. */
    public static Backend cpu(Precision precision) {
        if (precision == Precision.BF16) {
            throw new BadInputException("--precision bf16: the CPU computes in F32 (weights as stored); bf16 is a GPU "
                    + "precision (--device cuda), or leave out --precision");
        }
        return CpuBackend.INSTANCE;
    }

    /** GPU 0 in {@code precision} (BF16 when null), or the one-line reason there is none. */
    public static Backend gpu(String option, Precision precision) {
        return Cuda.require(option, precision == null ? Precision.BF16 : precision).backend();
    }
}
