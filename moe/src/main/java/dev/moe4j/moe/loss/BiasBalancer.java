package dev.moe4j.moe.loss;

import dev.moe4j.core.Tensor;
import dev.moe4j.moe.stats.RoutingStats;

/**
 * DeepSeek-V3's auxiliary-loss-free balancing (Wang et al. 2024): a per-expert bias is added to the selection
 * scores only (never to the gate weights), and after each training step it moves by a fixed step γ toward
 * balance: down for an expert that took more than the mean load, up for one that took less. No gradient is
 * involved, so it does not pull the router away from the language-modelling objective.
 *
 * <p>The trainer calls {@link #observe} after each forward pass of the layer (several for accumulated
 * micro-batches) and {@link #step} after the optimiser step.
 */
public final class BiasBalancer {
    private final Tensor bias;
    private final double gamma;
    private final long[] load;

    /** Balances {@code bias} ([experts], F32, the layer's selection bias) with update speed {@code gamma}. */
    public BiasBalancer(Tensor bias, double gamma) {
        if (bias.rank() != 1) {
            throw new IllegalArgumentException("selection bias must be [experts], got " + bias);
        }
        if (!(gamma > 0)) {
            throw new IllegalArgumentException("bias update speed must be > 0, got " + gamma);
        }
        this.bias = bias;
        this.gamma = gamma;
        this.load = new long[bias.dim(0)];
    }

    /** Adds the tokens each expert took in one forward pass. */
    public void observe(RoutingStats stats) {
        int[] perExpert = stats.tokensPerExpert();
        if (perExpert.length != load.length) {
            throw new IllegalArgumentException(perExpert.length + " experts observed, bias has " + load.length);
        }
        for (int i = 0; i < load.length; i++) {
            load[i] += perExpert[i];
        }
    }

    /** bᵢ += γ · sign(mean load − loadᵢ), then forgets the observed loads. */
    public void step() {
        double mean = 0;
        for (long l : load) {
            mean += l;
        }
        mean /= load.length;
        for (int i = 0; i < load.length; i++) {
            double violation = mean - load[i];
            bias.setFloat(i, (float) (bias.getFloat(i) + gamma * Math.signum(violation)));
        }
        java.util.Arrays.fill(load, 0);
    }
}
