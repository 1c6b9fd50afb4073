package dev.moe4j.model.generate;

import dev.moe4j.model.generate.structured.OutputConstraint;

import java.util.BitSet;
import java.util.SplittableRandom;

/**
 * Chooses each next token from the model's logits as {@link SamplingConfig} says, in transformers' order:
 * repetition penalty, OpenAI's presence and frequency penalties over the tokens chosen so far, then (when sampling) temperature, top-k, top-p and min-p, then the highest logit or a draw
 * from the softmax. Its random generator is seeded once, so a sequence of calls is reproducible. One per sequence.
 */
public final class Sampler {
    private final SamplingConfig config;
    private final SplittableRandom random;
    /** How often each token was chosen so far (the output), for the presence and frequency penalties. */
    private final java.util.Map<Integer, Integer> chosen = new java.util.HashMap<>();

    public Sampler(SamplingConfig config) {
        this.config = config;
        this.random = new SplittableRandom(config.seed());
    }

    public SamplingConfig config() {
        return config;
    }

    /**
     * The next token. {@code logits} (one row over the vocabulary) is processed in place; {@code seen} holds the
     * ids already in the prompt and the output, which the repetition penalty applies to.
     */
    public int next(float[] logits, BitSet seen) {
        return next(logits, seen, null);
    }

    /**
     * The next token among those {@code constraint} allows (null: any), or -1 where it allows none (a complete
     * structured output of a model without end-of-sequence ids). Masking happens after the penalties, which leave a
     * masked logit masked, and before temperature and truncation, as vLLM applies its grammar bitmask.
     */
    public int next(float[] logits, BitSet seen, OutputConstraint constraint) {
        if (config.repetitionPenalty() != 1) {
            LogitsProcessors.repetitionPenalty(logits, seen, config.repetitionPenalty());
        }
        if (config.presencePenalty() != 0 || config.frequencyPenalty() != 0) {
            LogitsProcessors.presenceAndFrequencyPenalties(logits, chosen, config.presencePenalty(),
                    config.frequencyPenalty());
        }
        if (constraint != null) {
            int best = config.sample() ? -1 : bestAllowed(logits, constraint);
            if (best < 0 && constraint.mask(logits) == 0) {
                return -1;
            }
            if (best >= 0) {
                chosen.merge(best, 1, Integer::sum);
                return best;
            }
        }
        int next = choose(logits);
        chosen.merge(next, 1, Integer::sum);
        return next;
    }

    /**
     * Greedy choice under a constraint without masking the whole vocabulary: the highest logits in turn, as long as
     * the model's favourites keep being refused a few times (the answer equals the masked argmax); -1 to mask.
     */
    private static int bestAllowed(float[] logits, OutputConstraint constraint) {
        float[] work = null;
        for (int tries = 0; tries < GREEDY_TRIES; tries++) {
            float[] l = work == null ? logits : work;
            int best = LogitsProcessors.argmax(l);
            if (l[best] == Float.NEGATIVE_INFINITY) {
                return -1;
            }
            if (constraint.allows(best)) {
                return best;
            }
            if (work == null) {
                work = logits.clone();
            }
            work[best] = Float.NEGATIVE_INFINITY;
        }
        return -1;
    }

    /** Refused candidates a greedy choice tries before it masks the whole vocabulary. */
    private static final int GREEDY_TRIES = 8;

    private int choose(float[] logits) {
        if (!config.sample()) {
            return LogitsProcessors.argmax(logits);
        }
        if (config.temperature() != 1) {
            LogitsProcessors.temperature(logits, config.temperature());
        }
        LogitsProcessors.topK(logits, config.topK());
        LogitsProcessors.topP(logits, config.topP());
        LogitsProcessors.minP(logits, config.minP());
        return draw(LogitsProcessors.probabilities(logits));
    }

    /** Inverse-CDF draw: the first token whose cumulative probability exceeds a uniform number in [0, 1). */
    private int draw(double[] probs) {
        double u = random.nextDouble();
        double cumulative = 0;
        int last = -1;
        for (int i = 0; i < probs.length; i++) {
            if (probs[i] > 0) {
                cumulative += probs[i];
                last = i;
                if (u < cumulative) {
                    return i;
                }
            }
        }
        if (last < 0) {
            throw new IllegalStateException("no token has a finite logit to sample from");
        }
        return last; // rounding left the total a hair below u: the last token with any probability
    }
}
