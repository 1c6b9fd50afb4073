package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.StreamingDecoder;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.router.Routing;
import dev.moe4j.train.data.TokenStream;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a trained model sends the tokens of its validation text, per MoE layer: each token's first-choice expert
 * (the router's top-ranked expert for token choice; the expert of highest router probability for expert choice and
 * Soft MoE), counted per domain (document) and per token type, with the measures of specialisation the papers use:
 * each domain's distribution over experts against the overall one (OLMoE's figure; Jensen-Shannon divergence), the
 * share of the experts' entropy that the domain or the token type explains (mutual information, also conditioned
 * on the other), how often consecutive tokens share their first expert (Mixtral's measure, against the rate chance
 * would give), and, for the coloured passages of the report, a passage of each domain with every token's expert.
 */
public final class RoutingAnalysis {
    /**
     * @param context         tokens per analysed sequence
     * @param batch           sequences per forward pass (Soft MoE mixes the tokens of a pass: as in training)
     * @param tokensPerDomain at most this many tokens of each domain are analysed
     * @param passageTokens   tokens of each domain's passage
     */
    public record Options(int context, int batch, int tokensPerDomain, int passageTokens) {
    }

    private RoutingAnalysis() {
    }

    private record Sequence(int domain, int[] ids) {
    }

    /** Analyses {@code model} on the documents of {@code validation}; the result is a JSON object for results.json. */
    public static ObjectNode analyse(Transformer model, Tokenizer tokenizer, TokenStream validation, Options o) {
        List<String> domains = new ArrayList<>();
        List<Sequence> sequences = new ArrayList<>();
        int[] tokens = validation.tokens();
        int[] starts = validation.documentStarts();
        for (int d = 0; d < starts.length; d++) {
            int from = starts[d], to = d + 1 < starts.length ? starts[d + 1] : tokens.length;
            int length = Math.min(to - from, o.tokensPerDomain());
            if (length < 2) {
                continue;
            }
            int domain = domains.indexOf(validation.documentNames().get(d));
            if (domain < 0) {
                domain = domains.size();
                domains.add(validation.documentNames().get(d));
            }
            int context = Math.min(o.context(), length);
            for (int s = 0; s + context <= length; s += context) {
                sequences.add(new Sequence(domain, Arrays.copyOfRange(tokens, from + s, from + s + context)));
            }
        }
        if (sequences.isEmpty()) {
            throw new IllegalArgumentException("no validation text to analyse");
        }
        List<Integer> moeLayers = model.moeLayerIndices();
        int layers = moeLayers.size();
        var node = Json.mapper().createObjectNode();
        node.put("tokens", sequences.stream().mapToInt(s -> s.ids().length).sum());
        var layerArray = node.putArray("layers");
        moeLayers.forEach(layerArray::add);
        if (layers == 0) {
            return node;
        }
        int experts = model.moeLayers().getFirst().config().experts();
        node.put("experts", experts);

        // first[s][layer][t]: the first-choice expert of token t of sequence s
        int[][][] first = new int[sequences.size()][][];
        double[] zSum = new double[layers], maxLogitSum = new double[layers];
        boolean soft = false;
        long analysed = 0;
        for (int from = 0; from < sequences.size(); ) {
            int length = sequences.get(from).ids().length;
            int to = from;
            while (to < sequences.size() && to - from < o.batch() && sequences.get(to).ids().length == length) {
                to++;
            }
            int[] ids = new int[(to - from) * length];
            for (int s = from; s < to; s++) {
                System.arraycopy(sequences.get(s).ids(), 0, ids, (s - from) * length, length);
            }
            ForwardPass pass = model.forward(Graph.inference(), ids, to - from, null);
            for (int s = from; s < to; s++) {
                first[s] = new int[layers][];
            }
            for (int l = 0; l < layers; l++) {
                Routing r = pass.moe().get(l).routing();
                soft |= r.soft() != null;
                int[] choice = firstChoices(r);
                for (int s = from; s < to; s++) {
                    first[s][l] = Arrays.copyOfRange(choice, (s - from) * length, (s - from + 1) * length);
                }
                if (r.soft() == null) {
                    float[] logits = r.logits();
                    for (int t = 0; t < r.tokens(); t++) {
                        double max = Double.NEGATIVE_INFINITY, sum = 0, maxAbs = 0;
                        for (int e = 0; e < experts; e++) {
                            max = Math.max(max, logits[t * experts + e]);
                            maxAbs = Math.max(maxAbs, Math.abs(logits[t * experts + e]));
                        }
                        for (int e = 0; e < experts; e++) {
                            sum += Math.exp(logits[t * experts + e] - max);
                        }
                        double lse = max + Math.log(sum);
                        zSum[l] += lse * lse;
                        maxLogitSum[l] += maxAbs;
                    }
                }
            }
            analysed += ids.length;
            from = to;
        }
        var z = node.putArray("router_z");
        var maxLogit = node.putArray("max_abs_logit");
        for (int l = 0; l < layers; l++) {
            z.add(soft ? Double.NaN : zSum[l] / analysed);
            maxLogit.add(soft ? Double.NaN : maxLogitSum[l] / analysed);
        }

        // Token types, from each id's own text.
        TokenType[] types = TokenType.values();
        Map<Integer, TokenType> typeOf = new HashMap<>();
        Map<Integer, Integer> frequency = new HashMap<>();
        for (Sequence s : sequences) {
            for (int id : s.ids()) {
                typeOf.computeIfAbsent(id, i -> TokenType.of(tokenizer.decode(new int[] {i}, false),
                        tokenizer.isSpecial(i)));
                frequency.merge(id, 1, Integer::sum);
            }
        }
        List<Integer> frequent = frequency.entrySet().stream()
                .sorted(Map.Entry.<Integer, Integer>comparingByValue().reversed()
                        .thenComparing(Map.Entry.comparingByKey()))
                .limit(24).map(Map.Entry::getKey).toList();

        double[][][] byDomain = new double[layers][domains.size()][experts];
        double[][][] byType = new double[layers][types.length][experts];
        double[][][][] byTypeAndDomain = new double[layers][types.length][domains.size()][experts];
        double[][][] byToken = new double[layers][frequent.size()][experts];
        double[] sameNext = new double[layers];
        long pairs = 0;
        for (int s = 0; s < sequences.size(); s++) {
            Sequence seq = sequences.get(s);
            for (int l = 0; l < layers; l++) {
                int[] f = first[s][l];
                for (int t = 0; t < f.length; t++) {
                    int id = seq.ids()[t], type = typeOf.get(id).ordinal();
                    byDomain[l][seq.domain()][f[t]]++;
                    byType[l][type][f[t]]++;
                    byTypeAndDomain[l][type][seq.domain()][f[t]]++;
                    int rank = frequent.indexOf(id);
                    if (rank >= 0) {
                        byToken[l][rank][f[t]]++;
                    }
                    if (t + 1 < f.length && f[t] == f[t + 1]) {
                        sameNext[l]++;
                    }
                }
            }
            pairs += seq.ids().length - 1;
        }

        var domainNode = node.putObject("domains");
        strings(domainNode.putArray("names"), domains);
        domainNode.set("counts", cube(byDomain));
        var typeNode = node.putObject("token_types");
        strings(typeNode.putArray("names"), Arrays.stream(types).map(TokenType::label).toList());
        typeNode.set("counts", cube(byType));
        var tokenNode = node.putObject("frequent_tokens");
        strings(tokenNode.putArray("names"), frequent.stream().map(id -> tokenizer.decode(new int[] {id}, false)).toList());
        tokenNode.set("counts", cube(byToken));

        var spec = node.putArray("specialisation");
        for (int l = 0; l < layers; l++) {
            double[] marginal = new double[experts];
            for (double[] row : byDomain[l]) {
                for (int e = 0; e < experts; e++) {
                    marginal[e] += row[e];
                }
            }
            double hExpert = Statistics.entropy(marginal);
            ObjectNode s = spec.addObject();
            s.put("layer", moeLayers.get(l));
            s.put("expert_entropy_bits", hExpert);
            s.put("mi_domain_bits", Statistics.mutualInformation(byDomain[l]));
            s.put("mi_type_bits", Statistics.mutualInformation(byType[l]));
            s.put("mi_domain_given_type_bits", conditional(byTypeAndDomain[l], false));
            s.put("mi_type_given_domain_bits", conditional(byTypeAndDomain[l], true));
            s.put("domain_share", hExpert > 0 ? Statistics.mutualInformation(byDomain[l]) / hExpert : 0);
            s.put("type_share", hExpert > 0 ? Statistics.mutualInformation(byType[l]) / hExpert : 0);
            var js = s.putArray("js_domain_vs_all");
            for (double[] row : byDomain[l]) {
                js.add(Statistics.jensenShannon(row, marginal));
            }
            double[] p = Statistics.normalised(marginal);
            double chance = 0;
            for (double v : p) {
                chance += v * v;
            }
            s.put("same_expert_next_token", pairs > 0 ? sameNext[l] / pairs : 0);
            s.put("same_expert_chance", chance);
        }

        var passages = node.putArray("passages");
        for (int d = 0; d < domains.size(); d++) {
            for (int s = 0; s < sequences.size(); s++) {
                if (sequences.get(s).domain() == d) {
                    passages.add(passage(domains.get(d), sequences.get(s).ids(), first[s], tokenizer, o.passageTokens()));
                    break;
                }
            }
        }
        return node;
    }

    /** Each token's first-choice expert. */
    static int[] firstChoices(Routing r) {
        int n = r.tokens(), e = r.experts();
        int[] out = new int[n];
        if (r.choices() != null && r.k() > 0) {
            for (int t = 0; t < n; t++) {
                out[t] = r.choices()[t * r.k()];
            }
            return out;
        }
        float[] p = r.probabilities();
        for (int t = 0; t < n; t++) {
            int best = 0;
            for (int i = 1; i < e; i++) {
                if (p[t * e + i] > p[t * e + best]) {
                    best = i;
                }
            }
            out[t] = best;
        }
        return out;
    }

    /**
     * I(domain; expert | type) from counts [type][domain][expert], or I(type; expert | domain) when
     * {@code typeGivenDomain}: what one variable says about the expert beyond what the other already says.
     */
    private static double conditional(double[][][] counts, boolean typeGivenDomain) {
        int types = counts.length, domains = counts[0].length, experts = counts[0][0].length;
        double total = 0, sum = 0;
        int outer = typeGivenDomain ? domains : types, inner = typeGivenDomain ? types : domains;
        for (int a = 0; a < outer; a++) {
            double[][] table = new double[inner][experts];
            double weight = 0;
            for (int b = 0; b < inner; b++) {
                double[] row = typeGivenDomain ? counts[b][a] : counts[a][b];
                for (int e = 0; e < experts; e++) {
                    table[b][e] = row[e];
                    weight += row[e];
                }
            }
            sum += weight * Statistics.mutualInformation(table);
            total += weight;
        }
        return total > 0 ? sum / total : 0;
    }

    private static ObjectNode passage(String domain, int[] ids, int[][] first, Tokenizer tokenizer, int limit) {
        int n = Math.min(limit, ids.length);
        ObjectNode p = Json.mapper().createObjectNode();
        p.put("domain", domain);
        var text = p.putArray("tokens");
        StreamingDecoder decoder = tokenizer.streamingDecoder(false);
        for (int t = 0; t < n; t++) {
            text.add(decoder.step(ids[t]));
        }
        var experts = p.putArray("experts");
        for (int[] layer : first) {
            var row = experts.addArray();
            for (int t = 0; t < n; t++) {
                row.add(layer[t]);
            }
        }
        return p;
    }

    private static void strings(ArrayNode array, List<String> values) {
        values.forEach(array::add);
    }

    private static ArrayNode cube(double[][][] values) {
        ArrayNode out = Json.mapper().createArrayNode();
        for (double[][] a : values) {
            var x = out.addArray();
            for (double[] b : a) {
                var y = x.addArray();
                for (double v : b) {
                    y.add((long) v);
                }
            }
        }
        return out;
    }
}
