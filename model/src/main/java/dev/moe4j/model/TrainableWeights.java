package dev.moe4j.model;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.WeightSource;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A checkpoint's weights as trainable F32 master copies: each weight is read (and checked) through
 * {@link CheckpointWeights}, copied into a heap {@link Parameter}, and experts stored per expert or transposed are
 * gathered into the stacked [E, 2I, H] / [E, H, I] tensors that training updates. Fine-tuning starts here; the
 * checkpoint can be closed once the model is built.
 */
final class TrainableWeights implements WeightSource {
    private static final Pattern STACKED = Pattern.compile("(layers\\.\\d+\\.moe\\.(?:experts|shared_experts)\\.)"
            + "(gate_up_proj|down_proj|gate_up_proj_bias|down_proj_bias)");

    private final CheckpointWeights checkpoint;

    TrainableWeights(CheckpointWeights checkpoint) {
        this.checkpoint = checkpoint;
    }

    @Override
    public Var weight(String name, int... shape) {
        Matcher m = STACKED.matcher(name);
        ExpertStorage stored = checkpoint.expertStorage();
        if (!m.matches() || stored == ExpertStorage.STACKED) {
            return new Parameter(name, checkpoint.weight(name, shape).value().to(DType.F32));
        }
        String prefix = m.group(1), part = m.group(2);
        Tensor out = Tensor.zeros(shape);
        if (stored == ExpertStorage.TRANSPOSED) {
            // gpt-oss stores [E, in, out]; the stacked layout is [E, out, in] with the same (interleaved) row order.
            boolean bias = part.endsWith("bias");
            Tensor t = checkpoint.weight(name, bias ? shape : new int[] {shape[0], shape[2], shape[1]}).value();
            if (bias) {
                out.copyFrom(t);
            } else {
                for (int e = 0; e < shape[0]; e++) {
                    for (int r = 0; r < shape[1]; r++) {
                        for (int c = 0; c < shape[2]; c++) {
                            out.set(t.get(e, c, r), e, r, c);
                        }
                    }
                }
            }
            return new Parameter(name, out);
        }
        // Per-expert storage is the Hugging Face families' and all of them are gated: gate and up rows.
        boolean shared = prefix.endsWith("shared_experts.");
        for (int e = 0; e < shape[0]; e++) {
            String p = shared ? prefix : prefix + e + ".";
            Tensor one = out.select(e);
            switch (part) {
                case "gate_up_proj" -> {
                    int rows = shape[1] / 2, cols = shape[2];
                    one.slice(0, rows).copyFrom(checkpoint.weight(p + "gate_proj.weight", rows, cols).value());
                    one.slice(rows, 2 * rows).copyFrom(checkpoint.weight(p + "up_proj.weight", rows, cols).value());
                }
                case "down_proj" -> one.copyFrom(checkpoint.weight(p + "down_proj.weight", shape[1], shape[2]).value());
                case "gate_up_proj_bias" -> {
                    int rows = shape[1] / 2;
                    one.slice(0, rows).copyFrom(checkpoint.weight(p + "gate_proj.bias", rows).value());
                    one.slice(rows, 2 * rows).copyFrom(checkpoint.weight(p + "up_proj.bias", rows).value());
                }
                default -> one.copyFrom(checkpoint.weight(p + "down_proj.bias", shape[1]).value());
            }
        }
        return new Parameter(name, out);
    }

    @Override
    public ExpertStorage expertStorage() {
        return ExpertStorage.STACKED;
    }
}
