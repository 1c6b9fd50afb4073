package dev.moe4j.moe.dispatch;

/**
 * How many tokens one expert may take in one forward pass. Dropless puts no bound; a fixed capacity is a number
 * (transformers' {@code expert_capacity}); a factor capacity is {@code factor · tokens · k / experts} rounded by
 * an explicit rule, because the published implementations disagree on it:
 * <ul>
 *   <li>Switch Transformer (Mesh TensorFlow): {@code int(factor · tokens / experts)} — {@link Rounding#FLOOR};</li>
 *   <li>V-MoE: {@code ceil(factor · tokens · k / experts)} rounded up to a multiple of 4 — {@link Rounding#CEIL}
 *       with {@code multipleOf} 4;</li>
 *   <li>Expert choice (Zhou et al. 2022): {@code tokens · factor / experts} with k = 1.</li>
 * </ul>
 * The result is never below {@code minimum} nor above the token count (an expert takes a token at most once).
 */
public record Capacity(Kind kind, double factor, int fixed, Rounding rounding, int multipleOf, int minimum) {
    public enum Kind { DROPLESS, FIXED, FACTOR }

    public enum Rounding { FLOOR, CEIL, ROUND }

    public Capacity {
        if (kind == null || rounding == null) {
            throw new IllegalArgumentException("capacity kind and rounding must be set");
        }
    }

    /** No capacity bound: every choice is served. */
    public static Capacity dropless() {
        return new Capacity(Kind.DROPLESS, 0, 0, Rounding.CEIL, 1, 0);
    }

    /** The same capacity whatever the number of tokens (transformers' {@code expert_capacity}). */
    public static Capacity fixed(int tokensPerExpert) {
        return new Capacity(Kind.FIXED, 0, tokensPerExpert, Rounding.CEIL, 1, 0);
    }

    /** {@code factor · tokens · k / experts}, rounded by {@code rounding}, then up to a multiple of {@code multipleOf}. */
    public static Capacity factor(double factor, Rounding rounding, int multipleOf) {
        return new Capacity(Kind.FACTOR, factor, 0, rounding, multipleOf, 0);
    }

    /** The Switch Transformer rule: {@code int(factor · tokens · k / experts)}. */
    public static Capacity switchFactor(double factor) {
        return factor(factor, Rounding.FLOOR, 1);
    }

    /** The V-MoE rule: {@code ceil(factor · tokens · k / experts)} rounded up to a multiple of 4. */
    public static Capacity vmoeFactor(double factor) {
        return factor(factor, Rounding.CEIL, 4);
    }

    /** This capacity with a lower bound (Mesh TensorFlow's {@code moe_min_expert_capacity}). */
    public Capacity withMinimum(int min) {
        return new Capacity(kind, factor, fixed, rounding, multipleOf, min);
    }

    public boolean isDropless() {
        return kind == Kind.DROPLESS;
    }

    /** Tokens one expert may take when {@code tokens} tokens each make {@code k} choices among {@code experts}. */
    public int perExpert(int tokens, int k, int experts) {
        return perExpert(tokens, factor * tokens * k / experts);
    }

    /**
     * Tokens one expert may take when {@code tokens} tokens make {@code assignments} choices in all among
     * {@code experts} (tokens that choose different numbers of experts: {@code factor · assignments / experts}).
     */
    public int perExpertOfAssignments(int tokens, int assignments, int experts) {
        return perExpert(tokens, factor * assignments / experts);
    }

    private int perExpert(int tokens, double raw) {
        long c = switch (kind) {
            case DROPLESS -> tokens;
            case FIXED -> fixed;
            case FACTOR -> {
                // A relative slack keeps exact products (16·2/4·1.25 = 10) from rounding up through float error.
                long r = switch (rounding) {
                    case FLOOR -> (long) Math.floor(raw + 1e-9 * Math.max(1, raw));
                    case CEIL -> (long) Math.ceil(raw - 1e-9 * Math.max(1, raw));
                    case ROUND -> Math.round(raw);
                };
                int m = Math.max(1, multipleOf);
                yield (r + m - 1) / m * m;
            }
        };
        c = Math.max(c, minimum);
        return (int) Math.min(c, tokens);
    }
}
