package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;

/** The per-layer attention kinds of transformers' {@code layer_types}, shared by the families that have it. */
final class QwenLayers {
    static final String FULL = "full_attention";
    static final String SLIDING = "sliding_attention";

    private QwenLayers() {
    }

    /** layer_types when given (one entry per layer), otherwise the family's rule for which layers slide. */
    static List<String> layerTypes(ConfigFields c, int numLayers, IntPredicate slidingByDefault) {
        var given = c.stringList("layer_types");
        if (given.isPresent()) {
            List<String> types = given.get();
            if (types.size() != numLayers) {
                throw c.error("layer_types", "has " + types.size() + " entries for " + numLayers + " layers");
            }
            for (String t : types) {
                if (!t.equals(FULL) && !t.equals(SLIDING)) {
                    throw c.error("layer_types", "holds '" + t + "'; expected " + FULL + " or " + SLIDING);
                }
            }
            return types;
        }
        var types = new ArrayList<String>();
        for (int i = 0; i < numLayers; i++) {
            types.add(slidingByDefault.test(i) ? SLIDING : FULL);
        }
        return types;
    }

    /** The window shared by every sliding layer, or 0 when none slides; mixed windows are not expressible. */
    static int commonWindow(ModelConfig config, String family) {
        int window = 0;
        for (LayerSpec l : config.layers()) {
            if (l.isSliding()) {
                HfCommon.require(window == 0 || window == l.slidingWindow(), family, "sliding windows of several sizes");
                window = l.slidingWindow();
            }
        }
        return window;
    }

    /**
     * use_sliding_window, sliding_window, max_window_layers and (with {@code layerTypes}) layer_types. Without
     * layer_types a family slides on every layer or none.
     */
    static void writeWindows(ModelConfig config, ObjectNode out, String family, boolean layerTypes) {
        int window = commonWindow(config, family);
        if (!layerTypes) {
            HfCommon.require(window == 0 || config.layers().stream().allMatch(LayerSpec::isSliding), family,
                    "a sliding window on some layers only");
        }
        out.put("use_sliding_window", window > 0);
        if (window > 0) {
            out.put("sliding_window", window);
        } else {
            out.putNull("sliding_window");
        }
        // Without layer_types, transformers 4.x slid only layers >= max_window_layers; 0 makes every layer slide
        // there too, agreeing with transformers 5.
        out.put("max_window_layers", layerTypes || window == 0 ? config.numLayers() : 0);
        if (layerTypes) {
            var types = out.putArray("layer_types");
            config.layers().forEach(l -> types.add(l.isSliding() ? SLIDING : FULL));
        }
    }
}
