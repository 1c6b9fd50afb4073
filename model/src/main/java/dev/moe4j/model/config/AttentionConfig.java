package dev.moe4j.model.config;

import java.util.OptionalDouble;

/**
 * How a layer attends: standard multi-head attention with grouped key/value heads, or DeepSeek's multi-head
 * latent attention, which projects keys and values through a low-rank latent.
 */
public sealed interface AttentionConfig {
    /** Query heads. */
    int numHeads();

    /** Width of the concatenated head outputs that the output projection reads. */
    int outputWidth();

    /**
     * Multi-head attention with {@code numKvHeads} key/value heads shared by groups of query heads (MHA when equal
     * to {@code numHeads}, MQA when 1, GQA in between).
     *
     * @param qkvBias    biases on the query, key and value projections
     * @param outputBias a bias on the output projection
     * @param clipQkv    when present, queries, keys and values are clamped to [-c, c] after projection (OLMoE)
     * @param sinks      a learned per-head logit that joins every softmax and takes probability mass from the
     *                   real keys without contributing a value (gpt-oss)
     */
    record Standard(int numHeads, int numKvHeads, int headDim, boolean qkvBias, boolean outputBias,
                    OptionalDouble clipQkv, boolean sinks) implements AttentionConfig {
        public Standard {
            positive("numHeads", numHeads);
            positive("numKvHeads", numKvHeads);
            positive("headDim", headDim);
            if (numHeads % numKvHeads != 0) {
                throw new IllegalArgumentException("numHeads " + numHeads + " is not a multiple of numKvHeads "
                        + numKvHeads);
            }
            if (clipQkv.isPresent() && !(clipQkv.getAsDouble() > 0)) {
                throw new IllegalArgumentException("clipQkv must be positive, got " + clipQkv.getAsDouble());
            }
        }

        /** Plain attention without biases, clipping or sinks. */
        public static Standard of(int numHeads, int numKvHeads, int headDim) {
            return new Standard(numHeads, numKvHeads, headDim, false, false, OptionalDouble.empty(), false);
        }

        @Override
        public int outputWidth() {
            return numHeads * headDim;
        }

        /** "multi-head", "grouped-query" or "multi-query", by the number of key/value heads. */
        public String kind() {
            return numKvHeads == numHeads ? "multi-head" : numKvHeads == 1 ? "multi-query" : "grouped-query";
        }
    }

    /**
     * Multi-head latent attention (DeepSeek-V2/V3). Queries come from {@code hidden -> qLoraRank -> heads x
     * (qkNopeHeadDim + qkRopeHeadDim)} (directly from hidden when {@code qLoraRank} is 0); keys and values from
     * one shared latent of {@code kvLoraRank} plus a single rotary key of {@code qkRopeHeadDim} shared by all
     * heads, expanded per head to {@code qkNopeHeadDim} key and {@code vHeadDim} value dimensions. Rotary position
     * applies only to the {@code qkRopeHeadDim} part.
     *
     * @param bias biases on the query down-projection, the key/value down-projection and the output projection
     */
    record Latent(int numHeads, int qLoraRank, int kvLoraRank, int qkNopeHeadDim, int qkRopeHeadDim,
                  int vHeadDim, boolean bias) implements AttentionConfig {
        public Latent {
            positive("numHeads", numHeads);
            if (qLoraRank < 0) {
                throw new IllegalArgumentException("qLoraRank must be 0 (none) or positive, got " + qLoraRank);
            }
            positive("kvLoraRank", kvLoraRank);
            positive("qkRopeHeadDim", qkRopeHeadDim);
            positive("vHeadDim", vHeadDim);
            if (qkNopeHeadDim < 0) {
                throw new IllegalArgumentException("qkNopeHeadDim must not be negative, got " + qkNopeHeadDim);
            }
        }

        /** Per-head width of queries and keys: the part without position plus the rotary part. */
        public int qkHeadDim() {
            return qkNopeHeadDim + qkRopeHeadDim;
        }

        @Override
        public int outputWidth() {
            return numHeads * vHeadDim;
        }
    }

    private static void positive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }
}
