package dev.moe4j.model.generate;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ForwardObserver;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Records which experts took each token in each MoE layer, as a {@link ForwardObserver} hears the routing, to
 * colour tokens by expert and to write one JSON line per token per layer. Positions before {@link #from} are not
 * recorded (a chat turn may re-feed part of the conversation, already traced: where the reply re-read through the
 * template differs from the ids its cache holds, or all of it without a kept cache).
 */
public final class ExpertTrace implements ForwardObserver {
    /** One token's routing in one layer: experts in the router's ranking order and their gate weights. */
    public record Route(int position, int layer, int[] experts, float[] weights) {
    }

    private final List<Route> routes = new ArrayList<>();
    private final Map<Long, Route> byPositionAndLayer = new HashMap<>();
    private int from;

    /** Records only positions at or after {@code position} from now on. */
    public void from(int position) {
        this.from = position;
    }

    @Override
    public void onRouting(int layer, int position, int[] experts, float[] weights) {
        if (position < from) {
            return;
        }
        var route = new Route(position, layer, experts.clone(), weights.clone());
        routes.add(route);
        byPositionAndLayer.put(key(position, layer), route);
    }

    /** Everything recorded, by position, then layer. */
    public List<Route> routes() {
        return routes.stream().sorted(Comparator.comparingInt(Route::position).thenComparingInt(Route::layer))
                .toList();
    }

    /** The routing of the token at {@code position} in {@code layer}, if it was heard. */
    public Optional<Route> route(int position, int layer) {
        return Optional.ofNullable(byPositionAndLayer.get(key(position, layer)));
    }

    /** The first-ranked expert of the token at {@code position} in {@code layer}, if it was heard. */
    public OptionalInt firstExpert(int position, int layer) {
        Route r = byPositionAndLayer.get(key(position, layer));
        return r == null || r.experts().length == 0 ? OptionalInt.empty() : OptionalInt.of(r.experts()[0]);
    }

    /** Forgets everything recorded (the {@link #from} position stays). */
    public void clear() {
        routes.clear();
        byPositionAndLayer.clear();
    }

    /**
     * The JSON lines of this trace: for each recorded route, the position, the token id there ({@code tokens}
     * holds the whole sequence), its text, the layer, the experts and their weights, plus {@code extra} fields
     * (for example the chat turn).
     */
    public List<String> jsonLines(int[] tokens, TokenText text, Map<String, Object> extra) {
        var lines = new ArrayList<String>();
        var tokenTexts = new HashMap<Integer, String>();
        for (Route r : routes()) {
            ObjectNode o = Json.mapper().createObjectNode();
            extra.forEach((k, v) -> o.set(k, Json.mapper().valueToTree(v)));
            o.put("position", r.position());
            if (r.position() < tokens.length) {
                int id = tokens[r.position()];
                o.put("token_id", id);
                o.put("token", tokenTexts.computeIfAbsent(id, text::of));
            }
            o.put("layer", r.layer());
            var experts = o.putArray("experts");
            for (int e : r.experts()) {
                experts.add(e);
            }
            var weights = o.putArray("weights");
            for (float w : r.weights()) {
                weights.add(w);
            }
            lines.add(Json.compact(o));
        }
        return lines;
    }

    /** Writes JSON lines to {@code file} atomically: a temporary file beside it, moved into place when complete. */
    public static void writeLines(Path file, List<String> lines) {
        Path temp = AtomicFiles.temporaryBeside(file);
        try (BufferedWriter w = Files.newBufferedWriter(temp, StandardCharsets.UTF_8)) {
            for (String line : lines) {
                w.write(line);
                w.write('\n');
            }
        } catch (IOException e) {
            AtomicFiles.deleteQuietly(temp);
            throw new dev.moe4j.core.BadInputException(file + ": cannot write: " + e.getMessage(), e);
        }
        AtomicFiles.commit(temp, file);
    }

    private static long key(int position, int layer) {
        return ((long) position << 32) | (layer & 0xffffffffL);
    }
}
