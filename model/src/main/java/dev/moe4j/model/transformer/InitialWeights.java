package dev.moe4j.model.transformer;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;

import java.util.SplittableRandom;

/**
 * Fresh trainable weights for a model trained from scratch, as transformers initialises its models: matrices and
 * sinks N(0, std²) with std the config's initializer_range, norm weights 1, biases 0. Every weight is drawn from
 * its own stream (seed and name), so adding a layer does not change the others. MoE layers initialise themselves
 * ({@code MoeLayer.initialize}) from {@link #seedFor}.
 */
public final class InitialWeights implements WeightSource {
    private final double std;
    private final long seed;

    public InitialWeights(double std, long seed) {
        this.std = std;
        this.seed = seed;
    }

    @Override
    public Var weight(String name, int... shape) {
        Tensor t = Tensor.zeros(shape);
        if (name.endsWith("norm.weight")) {
            t.fill(1f);
        } else if (!name.endsWith(".bias")) {
            var random = new SplittableRandom(seed ^ name.hashCode() * 0x9E3779B97F4A7C15L);
            for (long i = 0; i < t.size(); i++) {
                t.setFloat(i, (float) (random.nextGaussian() * std));
            }
        }
        return new Parameter(name, t);
    }

    @Override
    public ExpertStorage expertStorage() {
        return ExpertStorage.STACKED;
    }

    /** The seed of MoE layer {@code layer}'s own initialisation. */
    long seedFor(int layer) {
        return seed * 31 + layer + 1;
    }
}
