package dev.moe4j.cli;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.cuda.Cuda;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeLayer;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;

/**
 * {@code --device cpu|cuda} (a picocli mixin): where a command runs. Left out, the GPU is taken when the CUDA
 * driver finds one, else the CPU; {@code --device cuda} without a usable GPU is a one-line error.
 */
public final class DeviceOption {
    /** Where moe4j computes. */
    public enum Device {
        CPU, CUDA
    }

    @Option(names = "--device", paramLabel = "DEVICE",
            description = "cpu or cuda (default: cuda when an NVIDIA GPU and its driver are found, else cpu).")
    String device;

    /** The device asked for, or the automatic choice. */
    public Device resolve() {
        if (device == null) {
            return Cuda.available() ? Device.CUDA : Device.CPU;
        }
        return switch (device.toLowerCase(Locale.ROOT)) {
            case "cpu" -> Device.CPU;
            case "cuda", "gpu" -> {
                if (!Cuda.available()) {
                    Cuda.require("--device cuda"); // throws the one-line reason
                }
                yield Device.CUDA;
            }
            default -> throw new BadInputException("--device: expected cpu or cuda, got '" + device + "'");
        };
    }

    /**
     * The backend a model of {@code config} runs on: the one asked for, or left out, the GPU when there is one and
     * it runs the model's MoE options (else the CPU). Asked for explicitly, a GPU that cannot run them is an error
     * naming what it lacks.
     */
    public Backend backend(ModelConfig config) {
        Device d = resolve();
        if (d == Device.CPU) {
            return CpuBackend.INSTANCE;
        }
        List<String> missing = config.moe().map(MoeLayer::unsupportedOnDevice).orElse(List.of());
        if (!missing.isEmpty()) {
            if (device == null) {
                return CpuBackend.INSTANCE;
            }
            throw new BadInputException("--device cuda: this model's MoE layers use " + String.join(" and ", missing)
                    + ", which the GPU does not run yet; use --device cpu");
        }
        return Cuda.require("--device cuda").backend();
    }
}
