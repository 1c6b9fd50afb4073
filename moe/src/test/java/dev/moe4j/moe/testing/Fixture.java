package dev.moe4j.moe.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the F32 tensors of a reference safetensors file from the test resources. A minimal test-only reader (the
 * moe module does not depend on io): the 8-byte header length, the JSON header, then raw little-endian data.
 */
public final class Fixture {
    public record Array(int[] shape, float[] values) {
        public float get(int... index) {
            int flat = 0;
            for (int i = 0; i < shape.length; i++) {
                flat = flat * shape[i] + index[i];
            }
            return values[flat];
        }
    }

    private final Map<String, Array> tensors;

    private Fixture(Map<String, Array> tensors) {
        this.tensors = tensors;
    }

    public static Fixture load(String resource) {
        try (InputStream in = Fixture.class.getResourceAsStream("/fixtures/" + resource)) {
            if (in == null) {
                throw new IllegalArgumentException("no test resource fixtures/" + resource);
            }
            byte[] bytes = in.readAllBytes();
            ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            int headerLength = (int) buf.getLong(0);
            String header = new String(bytes, 8, headerLength, StandardCharsets.UTF_8);
            @SuppressWarnings("unchecked")
            Map<String, Object> entries = (Map<String, Object>) new Json(header).value();
            Map<String, Array> out = new LinkedHashMap<>();
            for (var entry : entries.entrySet()) {
                if (entry.getKey().equals("__metadata__")) {
                    continue;
                }
                @SuppressWarnings("unchecked")
                Map<String, Object> info = (Map<String, Object>) entry.getValue();
                if (!"F32".equals(info.get("dtype"))) {
                    continue;
                }
                List<?> shapeList = (List<?>) info.get("shape");
                List<?> offsets = (List<?>) info.get("data_offsets");
                int[] shape = shapeList.stream().mapToInt(o -> ((Number) o).intValue()).toArray();
                int begin = ((Number) offsets.get(0)).intValue(), end = ((Number) offsets.get(1)).intValue();
                float[] values = new float[(end - begin) / 4];
                for (int i = 0; i < values.length; i++) {
                    values[i] = buf.getFloat(8 + headerLength + begin + 4 * i);
                }
                out.put(entry.getKey(), new Array(shape, values));
            }
            return new Fixture(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Array get(String name) {
        Array a = tensors.get(name);
        if (a == null) {
            throw new IllegalArgumentException("fixture has no tensor " + name + "; it has " + tensors.keySet());
        }
        return a;
    }

    public float[] values(String name) {
        return get(name).values();
    }

    public float scalar(String name) {
        return get(name).values()[0];
    }

    /** Just enough JSON for a safetensors header: objects, arrays, strings, numbers. */
    private static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object value() {
            skip();
            char c = s.charAt(i);
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                i++;
                skip();
                if (s.charAt(i) == '}') {
                    i++;
                    return m;
                }
                while (true) {
                    skip();
                    String key = string();
                    skip();
                    i++; // ':'
                    m.put(key, value());
                    skip();
                    if (s.charAt(i++) == '}') {
                        return m;
                    }
                }
            }
            if (c == '[') {
                List<Object> l = new ArrayList<>();
                i++;
                skip();
                if (s.charAt(i) == ']') {
                    i++;
                    return l;
                }
                while (true) {
                    l.add(value());
                    skip();
                    if (s.charAt(i++) == ']') {
                        return l;
                    }
                }
            }
            if (c == '"') {
                return string();
            }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            return Double.parseDouble(s.substring(start, i));
        }

        private String string() {
            var sb = new StringBuilder();
            i++;
            while (s.charAt(i) != '"') {
                if (s.charAt(i) == '\\') {
                    i++;
                }
                sb.append(s.charAt(i++));
            }
            i++;
            return sb.toString();
        }

        private void skip() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }
    }
}
