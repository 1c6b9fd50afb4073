package dev.moe4j.model;

import dev.moe4j.core.Tensor;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.safetensors.TensorEntry;
import dev.moe4j.model.gguf.GgufModel;

import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;

/**
 * Finds a NaN or infinity in a checkpoint's weights. Scanning every weight when a model opens would read every byte
 * of it, which decoding an MoE model never does (it reads the experts it routes to), so a model is opened as it is
 * and its logits are watched instead ({@link TransformerModel}): the first logits that are not finite send this
 * through the checkpoint once to name the tensor at fault.
 */
final class NonFiniteWeights {
    private NonFiniteWeights() {
    }

    /**
     * Whether host F32 logits [rows, vocab] are finite: every value, or only the first of each row. A NaN or
     * infinity in a hidden state reaches every logit of its row through the final norm and the LM head, so after
     * one full look (which also covers the LM head's own rows) one value a row finds a bad weight at no cost to
     * decoding.
     */
    static boolean finite(Tensor logits, boolean everyValue) {
        var data = logits.segment();
        int vocab = logits.cols();
        long n = logits.size();
        for (long i = 0; i < n; i += everyValue ? 1 : vocab) {
            if (!Float.isFinite(data.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i))) {
                return false;
            }
        }
        return true;
    }

    /**
     * The first weight of the checkpoint in {@code folder} holding a NaN or an infinity, as the one line that names
     * its file, tensor and element, or empty when every weight is finite.
     */
    static Optional<String> find(Path folder) {
        if (GgufModel.isGguf(folder)) {
            try (GgufReader gguf = GgufReader.open(folder)) {
                for (GgufTensorInfo info : gguf.tensors()) {
                    if (info.type().dtype().isKernelFloat()) {
                        Optional<String> problem = nonFinite(folder, info.name(), info.shape(), gguf.tensor(info.name()));
                        if (problem.isPresent()) {
                            return problem;
                        }
                    }
                }
            }
            return Optional.empty();
        }
        try (Checkpoint checkpoint = Checkpoint.open(folder)) {
            for (SafetensorsReader file : checkpoint.files()) {
                for (TensorEntry entry : file.entries()) {
                    if (!entry.dtype().isKernelFloat()) {
                        continue;
                    }
                    Optional<String> problem = nonFinite(file.path(), entry.name(), entry.dims(), file.tensor(entry));
                    if (problem.isPresent()) {
                        return problem;
                    }
                }
            }
        }
        return Optional.empty();
    }

    private static Optional<String> nonFinite(Path file, String name, int[] shape, Tensor t) {
        for (long i = 0, n = t.size(); i < n; i++) {
            float v = t.getFloat(i);
            if (!Float.isFinite(v)) {
                return Optional.of(file + ": tensor '" + name + "' " + Arrays.toString(shape) + " holds " + v
                        + " at element " + i + ": the checkpoint is damaged (its weights must be finite numbers)");
            }
        }
        return Optional.empty();
    }
}
