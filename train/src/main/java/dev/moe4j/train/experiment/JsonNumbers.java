package dev.moe4j.train.experiment;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** Numbers into JSON as JavaScript reads them back: a value that is not finite becomes null. */
final class JsonNumbers {
    private JsonNumbers() {
    }

    static void put(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) {
            o.put(key, round(v));
        } else {
            o.putNull(key);
        }
    }

    static void add(ArrayNode a, double v) {
        if (Double.isFinite(v)) {
            a.add(round(v));
        } else {
            a.addNull();
        }
    }

    /** A number read back, NaN for null or missing. */
    static double get(JsonNode n, String key) {
        JsonNode v = n.path(key);
        return v.isNumber() ? v.asDouble() : Double.NaN;
    }

    /** Six significant digits: more than any of these measurements carries, and a smaller file. */
    static double round(double v) {
        if (v == 0 || Double.isInfinite(v)) {
            return v;
        }
        return new java.math.BigDecimal(v).round(new java.math.MathContext(6)).doubleValue();
    }
}
