package dev.moe4j.io.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.AdvancedFilter;

import java.util.Map;

/**
 * The {@code tojson} filter as transformers overrides it: Python's {@code json.dumps} with ensure_ascii=False,
 * so ", " and ": " separators, non-ASCII text kept, no HTML escaping; indent, separators and sort_keys as
 * keyword arguments. Models were trained on prompts whose tool schemas were written this way.
 */
final class PythonToJson implements AdvancedFilter {
    @Override
    public String getName() {
        return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
        Object indentArg = kwargs.getOrDefault("indent", args.length > 0 ? args[0] : null);
        Integer indent = indentArg == null ? null : ((Number) indentArg).intValue();
        boolean ensureAscii = Boolean.TRUE.equals(kwargs.get("ensure_ascii"));
        boolean sortKeys = Boolean.TRUE.equals(kwargs.get("sort_keys"));
        String itemSep = indent == null ? ", " : ",", keySep = ": ";
        if (kwargs.get("separators") instanceof java.util.List<?> seps && seps.size() == 2) {
            itemSep = String.valueOf(seps.get(0));
            keySep = String.valueOf(seps.get(1));
        }
        var sb = new StringBuilder();
        write(sb, var, indent, 0, itemSep, keySep, ensureAscii, sortKeys);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, Integer indent, int depth, String itemSep, String keySep,
                              boolean ascii, boolean sort) {
        switch (v) {
            case null -> sb.append("null");
            case Boolean b -> sb.append(b ? "true" : "false");
            case Double d -> sb.append(pythonFloat(d));
            case Float f -> sb.append(pythonFloat(f.doubleValue()));
            case Number n -> sb.append(n);
            case CharSequence s -> string(sb, s.toString(), ascii);
            case Map<?, ?> m -> {
                if (m.isEmpty()) {
                    sb.append("{}");
                    return;
                }
                var keys = new java.util.ArrayList<Object>(m.keySet());
                if (sort) keys.sort(java.util.Comparator.comparing(String::valueOf));
                sb.append('{');
                for (int i = 0; i < keys.size(); i++) {
                    if (i > 0) sb.append(itemSep);
                    newline(sb, indent, depth + 1);
                    string(sb, String.valueOf(keys.get(i)), ascii);
                    sb.append(keySep);
                    write(sb, m.get(keys.get(i)), indent, depth + 1, itemSep, keySep, ascii, sort);
                }
                newline(sb, indent, depth);
                sb.append('}');
            }
            case Iterable<?> it -> {
                var items = new java.util.ArrayList<Object>();
                it.forEach(items::add);
                if (items.isEmpty()) {
                    sb.append("[]");
                    return;
                }
                sb.append('[');
                for (int i = 0; i < items.size(); i++) {
                    if (i > 0) sb.append(itemSep);
                    newline(sb, indent, depth + 1);
                    write(sb, items.get(i), indent, depth + 1, itemSep, keySep, ascii, sort);
                }
                newline(sb, indent, depth);
                sb.append(']');
            }
            default -> string(sb, v.toString(), ascii);
        }
    }

    private static void newline(StringBuilder sb, Integer indent, int depth) {
        if (indent == null) return;
        sb.append('\n').append(" ".repeat(indent * depth));
    }

    /** Python's float repr: integral values keep ".0", others the shortest round-trip digits. */
    private static String pythonFloat(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == Math.rint(d) && Math.abs(d) < 1e16) return String.format("%.1f", d);
        String s = Double.toString(d);
        return s.replace("E", "e");
    }

    private static void string(StringBuilder sb, String s, boolean ascii) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || (ascii && c > 0x7E)) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
