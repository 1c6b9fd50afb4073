package dev.moe4j.model.route;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.Softmax;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.TokenText;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.moe.router.RoutingPolicy;
import dev.moe4j.moe.router.TopKRouter;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * What a routing policy costs on a trained model, measured on held-out text: its perplexity, the mean KL divergence
 * of its next-token distributions from the trained routing's, how many experts and parameters a token uses, how fast
 * it decodes (timed in the same run as the trained routing, the policies taking turns so that a busy machine slows
 * them alike), and per MoE layer the load per expert, the router's entropy and how often the policy chose other
 * experts than the trained top k would have.
 *
 * <p>The text goes through the model in windows of {@link Settings#context} tokens, each fed in chunks against a KV
 * cache per policy, the trained routing's beside them: every position's distributions are compared as they come,
 * so only one chunk of logits per policy is held at a time.
 */
public final class RouteEvaluation {
    /** Positions per forward pass of the text. */
    static final int CHUNK = 256;

    private RouteEvaluation() {
    }

    /**
     * @param context      tokens per window of the text (each window starts a fresh sequence)
     * @param decodePrompt tokens of the text that prompt the timed decoding
     * @param decodeTokens tokens decoded per timed run
     * @param runs         timed runs per policy, after one untimed warm-up run of every policy
     */
    public record Settings(int context, int decodePrompt, int decodeTokens, int runs) {
        public Settings {
            if (context < 2 || decodePrompt < 1 || decodeTokens < 2 || runs < 1) {
                throw new IllegalArgumentException("context >= 2, decodePrompt >= 1, decodeTokens >= 2, runs >= 1");
            }
        }
    }

    /**
     * One MoE layer under one policy, over the text's tokens.
     *
     * @param load        tokens each expert took
     * @param entropy     mean entropy (nats) of the router's probabilities
     * @param meanExperts experts per token
     * @param changed     share of tokens whose experts differ from the trained top k of the same router scores
     * @param dropped     share of tokens that did not take one of their trained top k
     * @param added       share of tokens that took an expert outside their trained top k
     */
    public record LayerStats(int layer, long[] load, double entropy, double meanExperts, double changed,
                             double dropped, double added) {
    }

    /**
     * One policy's measurements.
     *
     * @param meanKl             mean over positions of KL(trained ‖ policy) of the next-token distributions, nats
     * @param maxKl              the largest of them
     * @param meanExperts        routed experts per token, averaged over the MoE layers
     * @param activeParameters   parameters a token uses: all but the routed experts, plus the experts it took
     * @param bytesPerToken      bytes of weights a decoded token reads (the input embedding's row aside)
     * @param decodeTokensPerSecond each timed run's decode rate
     */
    public record PolicyResult(RoutingPolicy policy, double perplexity, double meanKl, double maxKl,
                               double meanExperts, double activeParameters, double bytesPerToken,
                               double[] decodeTokensPerSecond, List<LayerStats> layers) {
        /** The median of the timed runs. */
        public double decodeMedian() {
            return spread()[0];
        }

        /** Median, min and max of the timed runs' decode rates. */
        public double[] spread() {
            double[] v = decodeTokensPerSecond.clone();
            Arrays.sort(v);
            double median = v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
            return new double[] {median, v[0], v[v.length - 1]};
        }
    }

    /**
     * The evaluation.
     *
     * @param tokens           positions scored (each window's first token is only context)
     * @param expertBytes      bytes of one routed expert's weights
     * @param trainedK         the experts per token the model was trained with
     * @param policies         the trained routing first, then each policy asked for
     */
    public record Result(int tokens, int windows, Settings settings, long expertBytes, int trainedK, int experts,
                         List<Integer> moeLayers, List<PolicyResult> policies) {
    }

    /**
     * Measures every policy (the trained routing is always the first row) on {@code ids}, telling {@code progress}
     * what it is doing.
     */
    public static Result run(TransformerModel model, TokenText text, int[] ids, List<RoutingPolicy> asked,
                             Settings settings, Consumer<String> progress) {
        MoeConfig moe = model.config().moe().orElseThrow(() -> new BadInputException(
                "route-eval measures MoE routing; this model has no MoE layers"));
        if (!moe.tokenChoice()) {
            throw new BadInputException("route-eval measures token-choice routing policies; this model routes by "
                    + moe.router().name().toLowerCase(java.util.Locale.ROOT).replace('_', ' '));
        }
        if (ids.length < 2) {
            throw new BadInputException("--data: the text is " + ids.length + " token long; at least 2 are needed");
        }
        if (settings.decodePrompt() + settings.decodeTokens() > model.config().maxPositions()) {
            throw new BadInputException("--decode-prompt + --decode-tokens (" + (settings.decodePrompt()
                    + settings.decodeTokens()) + ") exceed the model's context of " + model.config().maxPositions());
        }
        if (settings.context() > model.config().maxPositions()) {
            throw new BadInputException("--context " + settings.context() + " exceeds the model's context of "
                    + model.config().maxPositions() + " positions");
        }
        var policies = new ArrayList<RoutingPolicy>(new LinkedHashSet<>(concat(RoutingPolicy.TRAINED, asked)));
        for (RoutingPolicy p : policies) {
            model.checkRouting(p, option -> "--policy '" + p + "': " + option);
        }
        List<Integer> layers = model.transformer().moeLayerIndices();
        List<MoeLayer> moeLayers = model.transformer().moeLayers();
        var routers = new HashMap<Integer, TopKRouter>();
        for (int i = 0; i < layers.size(); i++) {
            routers.put(layers.get(i), (TopKRouter) moeLayers.get(i).router());
        }
        int n = policies.size(), vocab = model.config().vocabSize();
        var observers = new ArrayList<Observer>();
        policies.forEach(p -> observers.add(new Observer(routers, moe.experts())));
        double[] nll = new double[n], kl = new double[n], maxKl = new double[n];
        int scored = 0, windows = 0;
        progress.accept("scoring " + ids.length + " tokens in windows of " + settings.context() + " under " + n
                + " routings");
        for (int start = 0; start + 1 < ids.length; start += settings.context()) {
            int[] window = Arrays.copyOfRange(ids, start, Math.min(ids.length, start + settings.context()));
            windows++;
            var states = new ArrayList<InferenceState>();
            for (RoutingPolicy p : policies) {
                InferenceState s = model.newState(window.length);
                s.routing(p);
                states.add(s);
            }
            try {
                for (int from = 0; from < window.length; from += CHUNK) {
                    int[] chunk = Arrays.copyOfRange(window, from, Math.min(window.length, from + CHUNK));
                    int rows = Math.min(chunk.length, window.length - 1 - from); // rows with a next token
                    float[][] logProbs = new float[n][];
                    for (int i = 0; i < n; i++) {
                        logProbs[i] = logSoftmax(model.forward(states.get(i), chunk, false, observers.get(i)), chunk.length,
                                vocab);
                    }
                    for (int r = 0; r < rows; r++) {
                        int target = window[from + r + 1];
                        int row = r * vocab;
                        for (int i = 0; i < n; i++) {
                            nll[i] -= logProbs[i][row + target];
                            double d = i == 0 ? 0 : divergence(logProbs[0], logProbs[i], row, vocab);
                            kl[i] += d;
                            maxKl[i] = Math.max(maxKl[i], d);
                        }
                    }
                    scored += Math.max(rows, 0);
                }
            } finally {
                states.forEach(InferenceState::release);
            }
        }
        // decode speed: every policy in turn, one untimed round first
        var generator = new Generator(model, text);
        int[] prompt = Arrays.copyOf(ids, Math.min(ids.length, settings.decodePrompt()));
        double[][] rates = new double[n][settings.runs()];
        for (int run = -1; run < settings.runs(); run++) {
            progress.accept(run < 0 ? "decoding: warm-up round" : "decoding: timed round " + (run + 1) + " of "
                    + settings.runs());
            // each round starts with another policy, so that no policy always runs right after the scoring or a GC
            for (int j = 0; j < n; j++) {
                int i = (j + Math.max(run, 0)) % n;
                var options = GenerationOptions.greedy(settings.decodeTokens(), java.util.Set.of())
                        .withRouting(policies.get(i));
                double rate = generator.generate(prompt, options, GenerationListener.NONE).timings()
                        .decodeTokensPerSecond();
                if (run >= 0) {
                    rates[i][run] = rate;
                }
            }
        }
        long expertBytes = expertBytes(model, layers.size(), moe.experts());
        double otherBytes = bytesBesideExperts(model);
        ParameterCount count = ParameterCount.of(model.config());
        double perExpert = (double) count.routedExperts() / (layers.size() * (long) moe.experts());
        var results = new ArrayList<PolicyResult>();
        for (int i = 0; i < n; i++) {
            List<LayerStats> stats = observers.get(i).stats(layers);
            double meanExperts = stats.stream().mapToDouble(LayerStats::meanExperts).average().orElse(0);
            double active = count.active() - count.activeRoutedExperts() + meanExperts * layers.size() * perExpert;
            double bytes = otherBytes + meanExperts * layers.size() * expertBytes;
            results.add(new PolicyResult(policies.get(i), Math.exp(nll[i] / scored), kl[i] / scored, maxKl[i],
                    meanExperts, active, bytes, rates[i], stats));
        }
        return new Result(scored, windows, settings, expertBytes, moe.topK(), moe.experts(), layers, results);
    }

    private static List<RoutingPolicy> concat(RoutingPolicy first, List<RoutingPolicy> rest) {
        var out = new ArrayList<RoutingPolicy>();
        out.add(first);
        out.addAll(rest);
        return out;
    }

    /** log-softmax of each row of a [rows, vocab] logits tensor. */
    private static float[] logSoftmax(Tensor logits, int rows, int vocab) {
        float[] out = logits.toFloatArray();
        float[] lse = new float[rows];
        Softmax.logSumExp(logits, lse);
        for (int r = 0; r < rows; r++) {
            for (int v = 0; v < vocab; v++) {
                out[r * vocab + v] -= lse[r];
            }
        }
        return out;
    }

    /** KL(p ‖ q) = Σ p (log p − log q) for one row of log-probabilities, in nats. */
    static double divergence(float[] logP, float[] logQ, int from, int vocab) {
        double sum = 0;
        for (int v = from; v < from + vocab; v++) {
            double lp = logP[v];
            if (lp > Double.NEGATIVE_INFINITY) {
                sum += Math.exp(lp) * (lp - logQ[v]);
            }
        }
        return Math.max(0, sum);
    }

    /** Bytes of one routed expert: all the routed experts' tensors over their count. */
    static long expertBytes(TransformerModel model, int moeLayers, int experts) {
        long bytes = 0;
        for (var e : model.transformer().tensors().entrySet()) {
            if (e.getKey().contains(".moe.experts.")) {
                bytes += e.getValue().byteSize();
            }
        }
        return bytes / ((long) moeLayers * experts);
    }

    /** Bytes of every weight a decoded token reads besides the routed experts (the input embedding's row aside). */
    static double bytesBesideExperts(TransformerModel model) {
        double bytes = 0;
        boolean tied = model.config().tieEmbeddings();
        for (var e : model.transformer().tensors().entrySet()) {
            String name = e.getKey();
            if (name.contains(".moe.experts.") || (name.equals("embed_tokens.weight") && !tied)) {
                continue;
            }
            bytes += e.getValue().byteSize();
        }
        return bytes;
    }

    /** Hears one policy's routing: per MoE layer the load, entropy, experts per token and choices changed. */
    private static final class Observer implements ForwardObserver {
        private final Map<Integer, TopKRouter> routers;
        private final int experts;
        private final Map<Integer, long[]> load = new HashMap<>();
        private final Map<Integer, double[]> sums = new HashMap<>(); // tokens, entropy, experts, changed, dropped, added
        /** The trained choices of the pass now being reported, per layer, and the next token's row among them. */
        private final Map<Integer, int[]> trained = new HashMap<>();
        private final Map<Integer, Integer> next = new HashMap<>();
        private int trainedK;

        Observer(Map<Integer, TopKRouter> routers, int experts) {
            this.routers = routers;
            this.experts = experts;
        }

        @Override
        public void onRouterLogits(int layer, Tensor logits) {
            int n = logits.rows();
            Routing r = routers.get(layer).routeLogits(logits.toFloatArray(), n);
            trained.put(layer, r.choices());
            trainedK = r.k();
            next.put(layer, 0);
            float[] p = r.probabilities();
            double entropy = 0;
            for (float x : p) {
                if (x > 0) {
                    entropy -= x * Math.log(x);
                }
            }
            sums.computeIfAbsent(layer, l -> new double[6])[1] += entropy;
        }

        @Override
        public void onRouting(int layer, int position, int[] chosen, float[] weights) {
            int t = next.merge(layer, 1, Integer::sum) - 1;
            int[] choices = trained.get(layer);
            long[] l = load.computeIfAbsent(layer, x -> new long[experts]);
            double[] s = sums.computeIfAbsent(layer, x -> new double[6]);
            s[0]++;
            s[2] += chosen.length;
            int kept = 0;
            boolean added = false;
            for (int x : chosen) {
                l[x]++;
                boolean found = false;
                for (int j = 0; j < trainedK; j++) {
                    found |= choices[t * trainedK + j] == x;
                }
                kept += found ? 1 : 0;
                added |= !found;
            }
            boolean dropped = kept < trainedK;
            s[3] += dropped || added ? 1 : 0;
            s[4] += dropped ? 1 : 0;
            s[5] += added ? 1 : 0;
        }

        List<LayerStats> stats(List<Integer> layers) {
            var out = new ArrayList<LayerStats>();
            for (int layer : layers) {
                double[] s = sums.getOrDefault(layer, new double[6]);
                double tokens = Math.max(1, s[0]);
                out.add(new LayerStats(layer, load.getOrDefault(layer, new long[experts]), s[1] / tokens, s[2] / tokens,
                        s[3] / tokens, s[4] / tokens, s[5] / tokens));
            }
            return out;
        }
    }
}
