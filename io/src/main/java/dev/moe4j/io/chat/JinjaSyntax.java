package dev.moe4j.io.chat;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Rewrites the pieces of Jinja syntax that Jinjava reads differently into equivalents it reads the Jinja way,
 * before a template is compiled:
 * <ul>
 *   <li>the reversed slice {@code xs[::-1]} (Qwen3 walks its messages backwards with it), which Jinjava cannot
 *       parse, becomes {@code (xs|reverse|list)};</li>
 *   <li>keyword-argument values get parentheses, {@code namespace(i=n|length - 1)} becoming
 *       {@code namespace(i=(n|length - 1))}, because Jinjava binds {@code =} tighter than arithmetic.</li>
 * </ul>
 * Only the insides of {{ }} and {% %} tags are touched, never text or string literals.
 */
final class JinjaSyntax {
    private static final Pattern REVERSED_SLICE = Pattern.compile("\\[\\s*::\\s*-1\\s*]");

    private JinjaSyntax() {
    }

    static String prepare(String template) {
        return parenthesizeKeywordValues(reverseSlices(template));
    }

    private static String reverseSlices(String template) {
        var m = REVERSED_SLICE.matcher(template);
        var out = new StringBuilder();
        int done = 0;
        while (m.find()) {
            int start = operandStart(template, m.start());
            if (start < done || start == m.start()) continue; // nothing to reverse: leave it for Jinjava to report
            out.append(template, done, start).append('(').append(template, start, m.start()).append("|reverse|list)");
            done = m.end();
        }
        return out.append(template.substring(done)).toString();
    }

    /** Where the operand before a subscript begins: a dotted name with calls and subscripts, or a bracket group. */
    private static int operandStart(String s, int end) {
        int i = end;
        while (i > 0) {
            char c = s.charAt(i - 1);
            if (c == ')' || c == ']') {
                int depth = 0;
                do {
                    char d = s.charAt(--i);
                    if (d == ')' || d == ']') depth++;
                    if (d == '(' || d == '[') depth--;
                } while (depth > 0 && i > 0);
            } else if (Character.isLetterOrDigit(c) || c == '_' || c == '.') {
                i--;
            } else {
                break;
            }
        }
        return i;
    }

    private static String parenthesizeKeywordValues(String s) {
        var opens = new ArrayList<Integer>();   // insert "(" before these positions
        var closes = new ArrayList<Integer>();  // insert ")" before these positions
        int i = 0;
        while (i < s.length()) {
            int open = s.indexOf('{', i);
            if (open < 0 || open + 1 >= s.length()) break;
            char kind = s.charAt(open + 1);
            if (kind != '{' && kind != '%') {
                if (kind == '#') {
                    int end = s.indexOf("#}", open + 2);
                    i = end < 0 ? s.length() : end + 2;
                } else {
                    i = open + 1;
                }
                continue;
            }
            String close = kind == '{' ? "}}" : "%}";
            if (kind == '%' && isMacroTag(s, open + 2)) {
                // a macro's parameter defaults are parsed by the macro tag itself, which wants them bare
                int end = s.indexOf(close, open + 2);
                i = end < 0 ? s.length() : end + 2;
                continue;
            }
            i = scanTag(s, open + 2, close, opens, closes);
        }
        if (opens.isEmpty()) return s;
        var sb = new StringBuilder(s.length() + 2 * opens.size());
        var inserts = new ArrayList<int[]>();
        for (int p : opens) inserts.add(new int[] {p, '('});
        for (int p : closes) inserts.add(new int[] {p, ')'});
        // at one position, closings go before openings
        inserts.sort((a, b) -> a[0] != b[0] ? Integer.compare(a[0], b[0])
                : Integer.compare(a[1] == ')' ? 0 : 1, b[1] == ')' ? 0 : 1));
        int done = 0;
        for (int[] ins : inserts) {
            sb.append(s, done, ins[0]).append((char) ins[1]);
            done = ins[0];
        }
        return sb.append(s.substring(done)).toString();
    }

    private static boolean isMacroTag(String s, int i) {
        if (i < s.length() && s.charAt(i) == '-') i++;
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        return s.startsWith("macro", i);
    }

    /** Scans one tag body from {@code i}; records where keyword values start and end; returns the index after it. */
    private static int scanTag(String s, int i, String close, List<Integer> opens, List<Integer> closes) {
        var brackets = new ArrayList<Character>();
        var pendingClose = new ArrayList<Integer>(); // bracket depth at which an open keyword value ends
        while (i < s.length()) {
            char c = s.charAt(i);
            if (brackets.isEmpty() && s.startsWith(close, i) || brackets.isEmpty() && c == '-' && s.startsWith(close, i + 1)) {
                while (!pendingClose.isEmpty()) {
                    closes.add(i);
                    pendingClose.removeLast();
                }
                return i + close.length() + (c == '-' ? 1 : 0);
            }
            if (c == '\'' || c == '"') {
                i = skipString(s, i);
                continue;
            }
            if (c == '(' || c == '[' || c == '{') {
                brackets.add(c);
            } else if (c == ')' || c == ']' || c == '}') {
                endValues(brackets.size(), pendingClose, closes, i);
                if (!brackets.isEmpty()) brackets.removeLast();
            } else if (c == ',') {
                endValues(brackets.size(), pendingClose, closes, i);
            } else if (c == '=' && isKeywordEquals(s, i, brackets)) {
                opens.add(i + 1);
                pendingClose.add(brackets.size());
            }
            i++;
        }
        return i;
    }

    private static void endValues(int depth, List<Integer> pendingClose, List<Integer> closes, int at) {
        while (!pendingClose.isEmpty() && pendingClose.getLast() == depth) {
            closes.add(at);
            pendingClose.removeLast();
        }
    }

    /** An "=" that names a call argument: inside parentheses, not part of ==, !=, <=, >=, after name( or name, */
    private static boolean isKeywordEquals(String s, int i, List<Character> brackets) {
        if (brackets.isEmpty() || brackets.getLast() != '(') return false;
        if (i + 1 < s.length() && s.charAt(i + 1) == '=') return false;
        char before = s.charAt(i - 1);
        if (before == '=' || before == '!' || before == '<' || before == '>') return false;
        int j = i - 1;
        while (j >= 0 && Character.isWhitespace(s.charAt(j))) j--;
        int nameEnd = j;
        while (j >= 0 && (Character.isLetterOrDigit(s.charAt(j)) || s.charAt(j) == '_')) j--;
        if (j == nameEnd) return false;
        while (j >= 0 && Character.isWhitespace(s.charAt(j))) j--;
        return j >= 0 && (s.charAt(j) == '(' || s.charAt(j) == ',');
    }

    private static int skipString(String s, int i) {
        char quote = s.charAt(i);
        i++;
        while (i < s.length() && s.charAt(i) != quote) {
            if (s.charAt(i) == '\\') i++;
            i++;
        }
        return i + 1;
    }
}
