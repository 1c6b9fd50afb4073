package dev.moe4j.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.SequenceCache;

import java.util.List;

/**
 * The moe4j extension of a reply: for each generated token, its first-ranked expert and that expert's gate weight
 * in every MoE layer, read from the {@link ExpertTrace} the generation fills. Tokens are reported once each, in
 * order, as the reply streams: a chunk carries the tokens generated since the previous one. The ids come from the
 * generation's {@link SequenceCache}, which holds every token fed (a traced generation feeds each token before its
 * text is released).
 */
final class ExpertTokens {
    private final ExpertTrace trace;
    private final SequenceCache fed;
    private final List<Integer> layers;
    private final int promptLength;
    private int next;

    ExpertTokens(ExpertTrace trace, SequenceCache fed, List<Integer> layers, int promptLength) {
        this.trace = trace;
        this.fed = fed;
        this.layers = List.copyOf(layers);
        this.promptLength = promptLength;
        this.next = promptLength;
    }

    /**
     * The extension object for the tokens at positions up to {@code position} (prompt included in the count) not
     * reported yet: {@code {"layers": [MoE layer indices], "tokens": [{"index", "token_id", "experts", "weights"}]}},
     * where {@code experts[i]} and {@code weights[i]} belong to {@code layers[i]} and {@code index} counts the
     * completion's tokens from 0.
     */
    ObjectNode upTo(int position) {
        ObjectNode ext = Json.mapper().createObjectNode();
        ArrayNode layerList = ext.putArray("layers");
        layers.forEach(layerList::add);
        ArrayNode tokens = ext.putArray("tokens");
        int last = Math.min(position, fed.length() - 1);
        for (; next <= last; next++) {
            ObjectNode t = tokens.addObject();
            t.put("index", next - promptLength);
            t.put("token_id", fed.idAt(next));
            ArrayNode experts = t.putArray("experts");
            ArrayNode weights = t.putArray("weights");
            for (int layer : layers) {
                var route = trace.route(next, layer).filter(r -> r.experts().length > 0);
                if (route.isPresent()) {
                    experts.add(route.get().experts()[0]);
                    weights.add(route.get().weights()[0]);
                } else {
                    experts.addNull();
                    weights.addNull();
                }
            }
        }
        return ext;
    }
}
