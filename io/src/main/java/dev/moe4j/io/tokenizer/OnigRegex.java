package dev.moe4j.io.tokenizer;

import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Compiles the regular expressions of tokenizer.json, written for Oniguruma (the engine the reference runs them
 * with), into java.util.regex patterns with the same meaning. The two agree on most syntax (classes, \p{..},
 * possessive quantifiers, look-around, inline (?i:..) groups); the translation covers where they differ:
 * <ul>
 *   <li>\s, \w, \d and POSIX classes are Unicode-wide in Oniguruma: compiled with UNICODE_CHARACTER_CLASS;</li>
 *   <li>case-insensitive groups fold Unicode case (the Kelvin sign matches k): UNICODE_CASE;</li>
 *   <li>only \n ends a line for ^, $ and '.', and ^/$ always match at line breaks: UNIX_LINES | MULTILINE;</li>
 *   <li>Ruby's (?m) is dot-all, which Java spells (?s); \h is a hex digit, not horizontal space;</li>
 *   <li>\p{^X} negates; script and long category names (\p{Han}, \p{Letter}) need Java's Is/gc= forms;</li>
 *   <li>[:alpha:]-style POSIX brackets inside classes.</li>
 * </ul>
 */
public final class OnigRegex {
    private static final int FLAGS = Pattern.UNICODE_CHARACTER_CLASS | Pattern.UNICODE_CASE | Pattern.UNIX_LINES
            | Pattern.MULTILINE;

    private static final Map<String, String> POSIX = Map.ofEntries(
            Map.entry("alpha", "\\p{Alpha}"), Map.entry("digit", "\\p{Digit}"), Map.entry("alnum", "\\p{Alnum}"),
            Map.entry("upper", "\\p{Upper}"), Map.entry("lower", "\\p{Lower}"), Map.entry("space", "\\s"),
            Map.entry("punct", "\\p{Punct}"), Map.entry("xdigit", "0-9a-fA-F"), Map.entry("word", "\\w"),
            Map.entry("cntrl", "\\p{Cntrl}"), Map.entry("blank", "\\p{Blank}"), Map.entry("print", "\\p{Print}"),
            Map.entry("graph", "\\p{Graph}"), Map.entry("ascii", "\\x00-\\x7F"));

    private OnigRegex() {
    }

    /** Compiles an Oniguruma pattern; throws {@link PatternSyntaxException} when it cannot be expressed. */
    public static Pattern compile(String onig) {
        return Pattern.compile(translate(onig), FLAGS);
    }

    /** The java.util.regex spelling of an Oniguruma pattern. */
    static String translate(String p) {
        var out = new StringBuilder(p.length() + 16);
        int classDepth = 0;
        int i = 0;
        while (i < p.length()) {
            char c = p.charAt(i);
            if (c == '\\' && i + 1 < p.length()) {
                char e = p.charAt(i + 1);
                if (e == 'p' || e == 'P') {
                    int close = p.indexOf('}', i);
                    if (i + 2 < p.length() && p.charAt(i + 2) == '{' && close > 0) {
                        String name = p.substring(i + 3, close);
                        boolean negate = e == 'P';
                        if (name.startsWith("^")) {
                            negate = !negate;
                            name = name.substring(1);
                        }
                        out.append(property(name, negate));
                        i = close + 1;
                        continue;
                    }
                } else if (e == 'h' || e == 'H') {
                    String hex = "0-9a-fA-F";
                    if (classDepth > 0 && e == 'h') out.append(hex);
                    else out.append(e == 'h' ? "[" + hex + "]" : "[^" + hex + "]");
                    i += 2;
                    continue;
                } else if (e == 'K') {
                    throw new PatternSyntaxException("\\K (keep) has no java.util.regex equivalent", p, i);
                }
                out.append(c).append(e);
                i += 2;
                continue;
            }
            if (classDepth > 0 && c == '[' && p.startsWith("[:", i)) {
                int end = p.indexOf(":]", i + 2);
                if (end > 0) {
                    String name = p.substring(i + 2, end);
                    boolean negate = name.startsWith("^");
                    String java = POSIX.get(negate ? name.substring(1) : name);
                    if (java != null) {
                        out.append(negate ? "[^" + java + "]" : java);
                        i = end + 2;
                        continue;
                    }
                }
            }
            if (c == '[') {
                classDepth++;
                out.append(c);
                i++;
                if (i < p.length() && p.charAt(i) == '^') {
                    out.append('^');
                    i++;
                }
                // a ']' right after '[' or '[^' is a literal in both engines, but Java wants it escaped
                if (i < p.length() && p.charAt(i) == ']') {
                    out.append("\\]");
                    i++;
                }
                continue;
            }
            if (c == ']' && classDepth > 0) {
                classDepth--;
                out.append(c);
                i++;
                continue;
            }
            if (c == '(' && classDepth == 0 && p.startsWith("(?", i)) {
                int j = i + 2;
                while (j < p.length() && "imx-".indexOf(p.charAt(j)) >= 0) j++;
                if (j > i + 2 && j < p.length() && (p.charAt(j) == ':' || p.charAt(j) == ')')) {
                    out.append("(?").append(p.substring(i + 2, j).replace('m', 's')).append(p.charAt(j));
                    i = j + 1;
                    continue;
                }
            }
            out.append(c);
            i++;
        }
        return out.toString();
    }

    private static String property(String name, boolean negate) {
        String p = negate ? "\\P" : "\\p";
        for (String candidate : new String[] {name, "Is" + name, "gc=" + name}) {
            try {
                Pattern.compile(p + "{" + candidate + "}");
                return p + "{" + candidate + "}";
            } catch (PatternSyntaxException ignored) {
                // try the next spelling
            }
        }
        String category = switch (name.toLowerCase(java.util.Locale.ROOT).replace("_", "").replace(" ", "")) {
            case "letter" -> "L";
            case "uppercaseletter" -> "Lu";
            case "lowercaseletter" -> "Ll";
            case "titlecaseletter" -> "Lt";
            case "modifierletter" -> "Lm";
            case "otherletter" -> "Lo";
            case "mark", "combiningmark" -> "M";
            case "nonspacingmark" -> "Mn";
            case "spacingmark" -> "Mc";
            case "enclosingmark" -> "Me";
            case "number" -> "N";
            case "decimalnumber" -> "Nd";
            case "letternumber" -> "Nl";
            case "othernumber" -> "No";
            case "punctuation" -> "P";
            case "symbol" -> "S";
            case "separator" -> "Z";
            case "other" -> "C";
            case "control" -> "Cc";
            case "format" -> "Cf";
            default -> throw new PatternSyntaxException("unknown Unicode property " + name, name, 0);
        };
        return p + "{" + category + "}";
    }
}
