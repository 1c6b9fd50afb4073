package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Softmax;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.moe.router.RoutingPolicy;

/**
 * How likely a model finds a text: for each token after the first, log p(token | the tokens before it), the
 * log-softmax of the logits at the previous position, and the perplexity exp(−mean). The text goes through the
 * model in chunks against the KV cache, so only one chunk's logits are held at a time.
 */
public final class Scorer {
    /** Positions per forward pass: bounds the logits held at once to CHUNK × vocabulary floats. */
    static final int CHUNK = 256;

    private final LanguageModel model;

    public Scorer(LanguageModel model) {
        this.model = model;
    }

    /**
     * The scores of {@code ids} (at least two tokens: the first has nothing before it to be predicted from).
     * {@code observer} (may be null) hears every position's forward pass.
     */
    public Scores score(int[] ids, ForwardObserver observer) {
        return score(ids, observer, RoutingPolicy.TRAINED);
    }

    /** {@link #score(int[], ForwardObserver)} with the MoE layers routing by {@code routing}. */
    public Scores score(int[] ids, ForwardObserver observer, RoutingPolicy routing) {
        int vocab = model.config().vocabSize();
        Generator.checkPrompt(ids, vocab, model.config().maxPositions());
        if (ids.length < 2) {
            throw new BadInputException("scoring needs at least 2 tokens (the first one is only context), got "
                    + ids.length);
        }
        model.checkRouting(routing, RoutingPolicy.Naming.flags());
        InferenceState state = model.newState(ids.length);
        state.routing(routing);
        float[] logProbs = new float[ids.length - 1];
        long start = System.nanoTime();
        try {
            for (int from = 0; from < ids.length; from += CHUNK) {
                int to = Math.min(ids.length, from + CHUNK);
                int[] chunk = java.util.Arrays.copyOfRange(ids, from, to);
                Tensor logits = model.forward(state, chunk, false, observer);
                float[] lse = new float[chunk.length];
                Softmax.logSumExp(logits, lse);
                // row r predicts the token at from + r + 1
                for (int r = 0; r < chunk.length && from + r + 1 < ids.length; r++) {
                    int target = ids[from + r + 1];
                    logProbs[from + r] = logits.getFloat((long) r * vocab + target) - lse[r];
                }
            }
        } finally {
            state.release();
        }
        return new Scores(ids.clone(), logProbs, System.nanoTime() - start);
    }

    /**
     * @param ids      the scored tokens
     * @param logProbs natural-log probability of ids[t + 1] given ids[0..t], for t = 0 .. n − 2
     * @param nanos    time spent in the model
     */
    public record Scores(int[] ids, float[] logProbs, long nanos) {
        /** The mean negative log-likelihood per predicted token, in nats. */
        public double meanNegativeLogLikelihood() {
            double sum = 0;
            for (float lp : logProbs) {
                sum -= lp;
            }
            return sum / logProbs.length;
        }

        /** exp of the mean negative log-likelihood. */
        public double perplexity() {
            return Math.exp(meanNegativeLogLikelihood());
        }
    }
}
