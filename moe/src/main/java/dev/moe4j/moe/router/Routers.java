package dev.moe4j.moe.router;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.MoeConfig;

import java.util.random.RandomGenerator;

/** Creates the router a {@link MoeConfig} asks for, with freshly initialised parameters. */
public final class Routers {
    private Routers() {
    }

    /**
     * Router weights are N(0, 1/hidden) so that logits start near N(0, 1) for unit-scale inputs; biases, the
     * selection bias and W_noise start at zero (so the noise starts at softplus(0) ≈ 0.69, as in Shazeer et al.);
     * Soft MoE's scale starts at 1; an expert-choice predictor as {@link ExpertChoicePredictor#initialize}.
     */
    public static Router initialize(MoeConfig c, RandomGenerator random) {
        int e = c.experts(), h = c.hidden();
        double std = 1 / Math.sqrt(h);
        Tensor bias = c.routerBias() ? Tensor.zeros(e) : null;
        return switch (c.router()) {
            case TOP_K, DENSE -> new TopKRouter(c, gaussian(random, std, e, h), bias,
                    c.noise().kind() == Noise.Kind.LEARNED_GAUSSIAN ? Tensor.zeros(e, h) : null,
                    c.selectionBias() ? Tensor.zeros(e) : null);
            // The predictor draws from a stream of its own, so that adding one leaves every other weight as it was.
            case EXPERT_CHOICE -> new ExpertChoiceRouter(c, gaussian(random, std, e, h), bias,
                    ExpertChoiceRouter.unsetThresholds(e), c.predictor().map(p -> ExpertChoicePredictor.initialize(
                            p, h, e, new java.util.SplittableRandom(c.seed() ^ 0x2545F4914F6CDD1DL))).orElse(null));
            case SOFT -> {
                Tensor scale = Tensor.zeros(1);
                scale.setFloat(0, 1f);
                yield new SoftMoeRouter(c, gaussian(random, std, e * c.slotsPerExpert(), h), scale);
            }
        };
    }

    static Tensor gaussian(RandomGenerator random, double std, int... shape) {
        Tensor t = Tensor.zeros(shape);
        for (long i = 0; i < t.size(); i++) {
            t.setFloat(i, (float) (random.nextGaussian() * std));
        }
        return t;
    }
}
