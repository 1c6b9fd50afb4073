package dev.moe4j.io.chat;

import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The Python methods that chat templates call on strings and dicts ({@code content.strip()},
 * {@code content.split('</think>')[-1]}, {@code message.get('content')}, {@code d.items()}), which Jinja inherits
 * from Python and a Java engine does not have. Installed first in Jinjava's resolver chain, so Java's own methods
 * of the same name (String.strip takes no argument) never answer instead.
 */
final class PythonMethods extends ELResolver {
    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(method instanceof String name)) return null;
        Object[] args = params == null ? new Object[0] : params;
        Object result;
        if (base instanceof String s) {
            result = stringMethod(s, name, args);
        } else if (base instanceof Map<?, ?> m) {
            result = mapMethod(m, name, args);
        } else {
            return null;
        }
        if (result == NONE) return null;
        context.setPropertyResolved(true);
        return result == NULL ? null : result;
    }

    private static final Object NONE = new Object(); // not a method this resolver knows
    private static final Object NULL = new Object(); // a method that returned Python's None

    private static Object stringMethod(String s, String name, Object[] a) {
        return switch (name) {
            case "strip" -> strip(s, a, true, true);
            case "lstrip" -> strip(s, a, true, false);
            case "rstrip" -> strip(s, a, false, true);
            case "startswith" -> affix(s, a[0], true);
            case "endswith" -> affix(s, a[0], false);
            case "split" -> split(s, a);
            case "upper" -> s.toUpperCase(java.util.Locale.ROOT);
            case "lower" -> s.toLowerCase(java.util.Locale.ROOT);
            case "title" -> title(s);
            case "capitalize" -> s.isEmpty() ? s : s.substring(0, 1).toUpperCase(java.util.Locale.ROOT) + s.substring(1).toLowerCase(java.util.Locale.ROOT);
            case "replace" -> a.length > 2 ? replaceCount(s, str(a[0]), str(a[1]), ((Number) a[2]).intValue()) : s.replace(str(a[0]), str(a[1]));
            case "find" -> (long) s.indexOf(str(a[0]));
            case "count" -> (long) count(s, str(a[0]));
            case "join" -> join(s, a[0]);
            case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
            case "isalpha" -> !s.isEmpty() && s.codePoints().allMatch(Character::isLetter);
            case "isspace" -> !s.isEmpty() && s.codePoints().allMatch(Character::isWhitespace);
            default -> NONE;
        };
    }

    private static Object mapMethod(Map<?, ?> m, String name, Object[] a) {
        return switch (name) {
            case "get" -> {
                Object v = m.get(a[0]);
                if (v == null && !m.containsKey(a[0])) v = a.length > 1 ? a[1] : null;
                yield v == null ? NULL : v;
            }
            case "items" -> {
                var items = new ArrayList<List<Object>>();
                m.forEach((k, v) -> items.add(java.util.Arrays.asList(k, v)));
                yield items;
            }
            case "keys" -> new ArrayList<>(m.keySet());
            case "values" -> new ArrayList<>(m.values());
            default -> NONE;
        };
    }

    private static String str(Object o) {
        return String.valueOf(o);
    }

    private static String strip(String s, Object[] a, boolean left, boolean right) {
        String chars = a.length > 0 && a[0] != null ? str(a[0]) : null;
        int start = 0, end = s.length();
        while (left && start < end && stripped(s.charAt(start), chars)) start++;
        while (right && end > start && stripped(s.charAt(end - 1), chars)) end--;
        return s.substring(start, end);
    }

    private static boolean stripped(char c, String chars) {
        return chars == null ? Character.isWhitespace(c) || Character.isSpaceChar(c) : chars.indexOf(c) >= 0;
    }

    private static boolean affix(String s, Object arg, boolean prefix) {
        if (arg instanceof Collection<?> options) {
            for (Object o : options) {
                if (prefix ? s.startsWith(str(o)) : s.endsWith(str(o))) return true;
            }
            return false;
        }
        return prefix ? s.startsWith(str(arg)) : s.endsWith(str(arg));
    }

    private static List<String> split(String s, Object[] a) {
        String sep = a.length > 0 && a[0] != null ? str(a[0]) : null;
        int max = a.length > 1 ? ((Number) a[1]).intValue() : -1;
        var out = new ArrayList<String>();
        if (sep == null) { // runs of white space, no empty pieces
            for (String p : s.strip().split("\\s+", max < 0 ? 0 : max + 1)) {
                if (!p.isEmpty()) out.add(p);
            }
            return out;
        }
        int from = 0;
        while (max < 0 || out.size() < max) {
            int i = s.indexOf(sep, from);
            if (i < 0) break;
            out.add(s.substring(from, i));
            from = i + sep.length();
        }
        out.add(s.substring(from));
        return out;
    }

    private static String title(String s) {
        var sb = new StringBuilder(s.length());
        boolean previousCased = false;
        for (char c : s.toCharArray()) {
            sb.append(previousCased ? Character.toLowerCase(c) : Character.toUpperCase(c));
            previousCased = Character.isLetter(c);
        }
        return sb.toString();
    }

    private static String replaceCount(String s, String from, String to, int count) {
        var sb = new StringBuilder();
        int i = 0, n = 0;
        while (n < count || count < 0) {
            int j = s.indexOf(from, i);
            if (j < 0) break;
            sb.append(s, i, j).append(to);
            i = j + from.length();
            n++;
        }
        return sb.append(s.substring(i)).toString();
    }

    private static int count(String s, String sub) {
        int n = 0;
        for (int i = s.indexOf(sub); i >= 0 && !sub.isEmpty(); i = s.indexOf(sub, i + sub.length())) n++;
        return n;
    }

    private static String join(String sep, Object items) {
        var parts = new ArrayList<String>();
        if (items instanceof Iterable<?> it) it.forEach(o -> parts.add(str(o)));
        return String.join(sep, parts);
    }

    // property access is left to the next resolvers
    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
