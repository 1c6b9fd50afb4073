package dev.moe4j.moe.router;

import dev.moe4j.core.BadInputException;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

/**
 * How a trained token-choice router's scores become choices at inference, when they should not become its trained
 * top k: a fixed number of experts per token (fewer or more than trained), dynamic top-p (experts in the router's
 * order until their probability mass reaches p, between a minimum and a maximum count), a probability floor, experts
 * masked or forced per layer, and a capacity bound over a pass. It changes which experts a token takes, never how the
 * family turns the chosen experts' scores into weights: renormalised over the chosen set where the family
 * renormalises (Mixtral, Qwen3-MoE, DeepSeek-V3 with {@code norm_topk_prob}), softmax over the chosen logits where the
 * family takes the top k before the softmax (gpt-oss), raw probabilities where it does not renormalise (Qwen2-MoE,
 * OLMoE with {@code norm_topk_prob: false}), routed scaling and selection bias as trained.
 *
 * <p>A masked expert is removed from the router, as if the model had never had it: its logit is −∞ before the
 * scores, so a softmax spreads the probability over the other experts (a pruned checkpoint computes exactly this),
 * and a group-limited router scores its groups without it. Forced experts are taken first and count towards the
 * number of experts; the floor never drops them.
 *
 * <p>The policy that changes nothing is {@link #TRAINED}; a policy equal in effect (k = trained k; top-p 1 with
 * max = trained k; an empty mask) computes bit for bit what the trained routing computes. Probabilities for top-p
 * and the floor are the router's: softmax over the unmasked experts, or for sigmoid scoring (DeepSeek-V3) the
 * sigmoid scores normalised to sum 1.
 *
 * @param expertsPerToken experts each token takes, 0 for the layer's trained k
 * @param topP            dynamic routing: take experts until their probability mass reaches this; 0 for off; 1 takes
 *                        {@code maxExperts} (the mass of fewer experts reaches 1 only by rounding)
 * @param minExperts      at least this many experts per token (top-p and the floor), 0 for 1
 * @param maxExperts      top-p's most experts per token, 0 for the layer's trained k
 * @param floor           drop chosen experts whose probability is under this, keeping at least {@code minExperts};
 *                        0 for off
 * @param masks           experts removed from the router, per layer
 * @param forced          experts every token takes, per layer
 * @param capacity        a bound on the tokens one expert takes in a pass (tokens compete within the pass); null to
 *                        route as trained (dropless for every Hugging Face family)
 * @param overflow        what a choice that finds its expert full does (with {@code capacity})
 * @param priority        which tokens claim slots first (with {@code capacity})
 */
public record RoutingPolicy(int expertsPerToken, double topP, int minExperts, int maxExperts, double floor,
                            List<LayerExperts> masks, List<LayerExperts> forced, Capacity capacity, Overflow overflow,
                            Priority priority) {

    /** The routing the model was trained with. */
    public static final RoutingPolicy TRAINED = new RoutingPolicy(0, 0, 0, 0, 0, List.of(), List.of(), null,
            Overflow.DROP, Priority.POSITION);

    /** Layer index of a {@link LayerExperts} that applies to every MoE layer. */
    public static final int EVERY_LAYER = -1;

    /**
     * Experts of one decoder layer (or of every MoE layer: {@link #EVERY_LAYER}), ascending, without repeats.
     */
    public record LayerExperts(int layer, List<Integer> experts) {
        public LayerExperts {
            experts = List.copyOf(new TreeSet<>(experts));
        }

        @Override
        public String toString() {
            return (layer == EVERY_LAYER ? "*" : Integer.toString(layer)) + ":"
                    + String.join(",", experts.stream().map(String::valueOf).toList());
        }
    }

    /** How errors name the options: command-line flags or the fields of a request. */
    @FunctionalInterface
    public interface Naming {
        /** The name shown for an option given by its flag name without dashes ("experts-per-token"). */
        String of(String option);

        /** {@code --experts-per-token}. */
        static Naming flags() {
            return option -> "--" + option;
        }

        /** {@code prefix + experts_per_token}. */
        static Naming fields(String prefix) {
            return option -> prefix + option.replace('-', '_');
        }
    }

    public RoutingPolicy {
        masks = List.copyOf(masks);
        forced = List.copyOf(forced);
        if (overflow == null || priority == null) {
            throw new IllegalArgumentException("overflow and priority must be set");
        }
    }

    /** A policy taking {@code k} experts per token. */
    public static RoutingPolicy experts(int k) {
        return builder(Naming.flags()).expertsPerToken(k).build();
    }

    /** Collects a policy's options; errors name them through {@code naming}. */
    public static RoutingPolicyBuilder builder(Naming naming) {
        return new RoutingPolicyBuilder(naming);
    }

    /**
     * Reads a policy written as space-separated {@code key=value} items (route-eval's {@code --policy}); see
     * {@link RoutingPolicyBuilder#parse}.
     */
    public static RoutingPolicy parse(String spec, String option) {
        return RoutingPolicyBuilder.parse(spec, option);
    }

    /** True for the trained routing, whatever the model. */
    public boolean isTrained() {
        return equals(TRAINED);
    }

    /**
     * True when every token's choices depend on its own scores alone, so that a pass over many tokens chooses what
     * passes over each would (false with a capacity, under which the tokens of a pass compete).
     */
    public boolean routesEachTokenAlone() {
        return capacity == null;
    }

    /**
     * Checks the policy against a model: its MoE layers' config and the decoder-layer indices of those layers.
     * Every mistake is a one-line {@link BadInputException} naming the option.
     */
    public void check(MoeConfig config, Collection<Integer> moeLayers, Naming naming) {
        if (isTrained()) {
            return;
        }
        if (!config.tokenChoice()) {
            throw new BadInputException("routing policies change token-choice routing; this model routes by "
                    + config.router().name().toLowerCase(Locale.ROOT).replace('_', ' ') + " (" + firstOption(naming)
                    + ")");
        }
        int e = config.experts();
        int eligible = eligible(config);
        if (expertsPerToken > e) {
            throw new BadInputException(naming.of("experts-per-token") + " " + expertsPerToken + ": the model's MoE"
                    + " layers have " + e + " experts");
        }
        if (expertsPerToken > eligible) {
            throw new BadInputException(naming.of("experts-per-token") + " " + expertsPerToken + ": a token chooses"
                    + " within its best " + config.groupLimit().topGroups() + " groups of " + e / config.groupLimit().groups()
                    + " experts, at most " + eligible + " experts");
        }
        if (maxExperts > eligible) {
            throw new BadInputException(naming.of("max-experts") + " " + maxExperts + ": a token can take at most "
                    + eligible + " experts in this model");
        }
        int max = maxExperts > 0 ? maxExperts : config.topK();
        if (minExperts > (topP > 0 ? max : eligible)) {
            throw new BadInputException(naming.of("min-experts") + " " + minExperts + " is more than "
                    + (topP > 0 ? "the most experts top-p takes (" + max + ")" : "a token can take (" + eligible + ")"));
        }
        var layers = new TreeSet<>(moeLayers);
        checkLayers(masks, layers, e, naming.of("expert-mask"));
        checkLayers(forced, layers, e, naming.of("force-experts"));
        for (int layer : layers) {
            BitSet masked = experts(masks, layer);
            BitSet force = experts(forced, layer);
            if (masked.cardinality() == e) {
                throw new BadInputException(naming.of("expert-mask") + ": every expert of layer " + layer
                        + " is masked; leave at least one");
            }
            if (masked.intersects(force)) {
                BitSet both = (BitSet) masked.clone();
                both.and(force);
                throw new BadInputException(naming.of("force-experts") + ": expert " + both.nextSetBit(0)
                        + " of layer " + layer + " is also masked");
            }
        }
    }

    private String firstOption(Naming naming) {
        if (expertsPerToken > 0) {
            return naming.of("experts-per-token");
        }
        if (topP > 0) {
            return naming.of("expert-top-p");
        }
        if (floor > 0) {
            return naming.of("expert-floor");
        }
        if (!masks.isEmpty()) {
            return naming.of("expert-mask");
        }
        if (!forced.isEmpty()) {
            return naming.of("force-experts");
        }
        return naming.of("capacity-factor");
    }

    /** Experts a token may choose: all, or those of its best groups. */
    private static int eligible(MoeConfig config) {
        GroupLimit g = config.groupLimit();
        return g.isLimited() ? g.topGroups() * (config.experts() / g.groups()) : config.experts();
    }

    private static void checkLayers(List<LayerExperts> list, TreeSet<Integer> layers, int experts, String option) {
        for (LayerExperts l : list) {
            if (l.layer() != EVERY_LAYER && !layers.contains(l.layer())) {
                throw new BadInputException(option + " " + l + ": layer " + l.layer() + " is not an MoE layer of this"
                        + " model (MoE layers: " + String.join(",", layers.stream().map(String::valueOf).toList()) + ")");
            }
            for (int x : l.experts()) {
                if (x >= experts) {
                    throw new BadInputException(option + " " + l + ": expert " + x + " does not exist; the MoE layers"
                            + " have experts 0 to " + (experts - 1));
                }
            }
        }
    }

    private static BitSet experts(List<LayerExperts> list, int layer) {
        var out = new BitSet();
        for (LayerExperts l : list) {
            if (l.layer() == EVERY_LAYER || l.layer() == layer) {
                l.experts().forEach(out::set);
            }
        }
        return out;
    }

    /** This policy resolved for decoder layer {@code layer} of config {@code config}. */
    public Layer forLayer(int layer, MoeConfig config) {
        int trained = config.topK();
        int k = expertsPerToken > 0 ? expertsPerToken : trained;
        int max = topP > 0 ? (maxExperts > 0 ? maxExperts : trained) : k;
        BitSet masked = experts(masks, layer);
        boolean[] mask = null;
        if (!masked.isEmpty()) {
            mask = new boolean[config.experts()];
            for (int x = masked.nextSetBit(0); x >= 0; x = masked.nextSetBit(x + 1)) {
                mask[x] = true;
            }
        }
        int[] force = experts(forced, layer).stream().toArray();
        return new Layer(this, topP > 0 ? 0 : k, topP, Math.max(1, minExperts), Math.max(max, force.length), floor,
                mask, force);
    }

    /**
     * A policy as one layer applies it.
     *
     * @param fixed  experts per token when not dynamic (0 with top-p)
     * @param most   the most experts a token takes (its choices' room)
     * @param mask   true for the experts removed from this layer's router, or null for none
     * @param forced the experts every token takes in this layer
     */
    public record Layer(RoutingPolicy policy, int fixed, double topP, int least, int most, double floor,
                        boolean[] mask, int[] forced) {

        /** Whether the choice needs the router's probabilities (top-p, the floor). */
        boolean needsProbabilities() {
            return topP > 0 || floor > 0;
        }

        /** Whether the choice is the plain top {@code fixed} of the selection key. */
        boolean plainTopK() {
            return topP == 0 && floor == 0 && forced.length == 0;
        }

        /**
         * Chooses one token's experts into {@code out[outFrom ..]}, best first, and returns how many.
         *
         * @param key   the selection key of the token's experts at {@code from} (−∞: masked, or outside its groups)
         * @param probs the router's probabilities at {@code from}, or null when {@link #needsProbabilities} is false
         * @param width the room of the token's row in {@code out} (at least {@link #most}); what is not chosen is −1
         */
        public int choose(float[] key, float[] probs, int from, int experts, int[] out, int outFrom, int width) {
            if (plainTopK()) {
                RouterMath.topK(key, from, experts, fixed, out, outFrom);
                int count = 0;
                while (count < fixed && out[outFrom + count] >= 0) {
                    count++;
                }
                Arrays.fill(out, outFrom + count, outFrom + width, -1);
                return count;
            }
            int count = 0;
            float mass = 0;
            for (int x : forced) {
                out[outFrom + count++] = x;
                mass += probs == null ? 0 : probs[from + x];
            }
            int cap = fixed > 0 ? Math.max(fixed, forced.length) : most;
            int[] ranked = new int[Math.min(experts, cap + forced.length)];
            RouterMath.topK(key, from, experts, ranked.length, ranked, 0);
            for (int j = 0; j < ranked.length && count < cap; j++) {
                int x = ranked[j];
                if (x < 0) {
                    break;
                }
                if (isForced(x)) {
                    continue;
                }
                if (fixed == 0 && count >= least && topP < 1 && mass >= topP) {
                    break;
                }
                out[outFrom + count++] = x;
                mass += probs == null ? 0 : probs[from + x];
            }
            if (floor > 0) {
                int kept = forced.length;
                for (int j = forced.length; j < count; j++) {
                    int x = out[outFrom + j];
                    if (probs[from + x] >= floor || kept < least) {
                        out[outFrom + kept++] = x;
                    }
                }
                count = kept;
            }
            Arrays.fill(out, outFrom + count, outFrom + width, -1);
            return count;
        }

        private boolean isForced(int x) {
            for (int f : forced) {
                if (f == x) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * A short description of what the policy changes ("trained", "k=1", "top-p=0.7 max=4", "mask=3:0,5"), in the
     * syntax {@link #parse} reads.
     */
    @Override
    public String toString() {
        if (isTrained()) {
            return "trained";
        }
        var parts = new ArrayList<String>();
        if (expertsPerToken > 0) {
            parts.add("k=" + expertsPerToken);
        }
        if (topP > 0) {
            parts.add("top-p=" + number(topP));
        }
        if (minExperts > 0) {
            parts.add("min=" + minExperts);
        }
        if (maxExperts > 0) {
            parts.add("max=" + maxExperts);
        }
        if (floor > 0) {
            parts.add("floor=" + number(floor));
        }
        if (!masks.isEmpty()) {
            parts.add("mask=" + String.join(";", masks.stream().map(LayerExperts::toString).toList()));
        }
        if (!forced.isEmpty()) {
            parts.add("force=" + String.join(";", forced.stream().map(LayerExperts::toString).toList()));
        }
        if (capacity != null) {
            parts.add("capacity=" + number(capacity.factor()));
            if (overflow != Overflow.DROP) {
                parts.add("overflow=" + name(overflow));
            }
            if (priority != Priority.POSITION) {
                parts.add("priority=" + name(priority));
            }
        }
        return String.join(" ", parts);
    }

    static String number(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }

    private static String name(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

}
