package dev.moe4j.train.optim;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.kernels.VectorMath;

import java.util.List;

/** Clipping by the global norm of all gradients, as {@code torch.nn.utils.clip_grad_norm_} does. */
public final class GradientClipping {
    private GradientClipping() {
    }

    /** The L2 norm of every gradient together, accumulated in double. */
    public static double globalNorm(List<Parameter> parameters) {
        double sum = 0;
        for (Parameter p : parameters) {
            if (p.hasGrad()) {
                double n = VectorMath.dot(p.grad(), p.grad());
                sum += n;
            }
        }
        return Math.sqrt(sum);
    }

    /**
     * The factor clipping scales every gradient by for a global {@code norm}: min(1, maxNorm / (norm + 1e-6)) in
     * float, as {@code clip_grad_norm_} computes it; 1 when {@code maxNorm} is not positive.
     */
    public static float coefficient(double norm, double maxNorm) {
        if (maxNorm <= 0) {
            return 1f;
        }
        double coefficient = maxNorm / (norm + 1e-6);
        return coefficient < 1 ? (float) coefficient : 1f;
    }

    /**
     * Scales every gradient by min(1, maxNorm / (norm + 1e-6)) and returns the norm before clipping; a
     * non-positive {@code maxNorm} only measures.
     */
    public static double clip(List<Parameter> parameters, double maxNorm) {
        double norm = globalNorm(parameters);
        if (maxNorm > 0) {
            double coefficient = maxNorm / (norm + 1e-6);
            if (coefficient < 1) {
                for (Parameter p : parameters) {
                    if (p.hasGrad()) {
                        VectorMath.scale(p.grad(), (float) coefficient);
                    }
                }
            }
        }
        return norm;
    }
}
