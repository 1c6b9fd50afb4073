package dev.moe4j.model.generate.structured;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Where constrained output stands: which bytes may come next under a {@link Shape}. It is a pushdown recogniser of
 * JSON (and raw text) fed one symbol at a time; a symbol is a byte (0-255) or a special token (256 + its id). A
 * matcher is immutable: {@link #advance} returns the matcher after one more symbol, so that a walk over the
 * vocabulary shares the work of common token prefixes. Alternatives (anyOf, the keys an object may take next) are
 * followed side by side, as threads.
 *
 * <p>Whitespace between JSON tokens is one space, or a newline and at most {@link #MAX_INDENT} spaces or tabs (as
 * llama.cpp's JSON grammar bounds it: a model left free to emit whitespace can loop on it), enough for compact and
 * pretty-printed JSON; numbers are at most {@link #MAX_NUMBER} characters and containers nest at
 * most {@link #MAX_DEPTH} deep. Strings are checked as UTF-8 and JSON escapes.
 */
public final class ByteMatcher {
    static final int MAX_INDENT = 20;
    static final int MAX_NUMBER = 32;
    static final int MAX_DEPTH = 32;
    /** More alternatives than this at once is a schema that would make masking slow; the rest are dropped. */
    static final int MAX_THREADS = 256;

    private final Stack[] threads;

    private ByteMatcher(Stack[] threads) {
        this.threads = threads;
    }

    /** A matcher at the start of output that must be one {@code root}, then nothing but a little whitespace. */
    public static ByteMatcher start(Shape root) {
        return new ByteMatcher(new Stack[] {new Stack(new Value(root, 0, 0), new Stack(new End(0), null))});
    }

    /** The matcher after {@code symbol}, or null where the symbol is not allowed here. */
    public ByteMatcher advance(int symbol) {
        var out = new ArrayList<Stack>(threads.length);
        for (Stack s : threads) {
            feed(s, symbol, out);
        }
        if (out.isEmpty()) {
            return null;
        }
        if (out.size() > 1) {
            List<Stack> distinct = out.stream().distinct().limit(MAX_THREADS).toList();
            return new ByteMatcher(distinct.toArray(Stack[]::new));
        }
        return new ByteMatcher(out.toArray(Stack[]::new));
    }

    /** The matcher after all of {@code symbols}, or null where one is not allowed. */
    public ByteMatcher advance(int[] symbols) {
        ByteMatcher m = this;
        for (int i = 0; i < symbols.length && m != null; i++) {
            m = m.advance(symbols[i]);
        }
        return m;
    }

    /** Whether the output may end here: the root is complete. */
    public boolean accepting() {
        for (Stack s : threads) {
            if (complete(s)) {
                return true;
            }
        }
        return false;
    }

    private static boolean complete(Stack s) {
        for (; s != null; s = s.below) {
            switch (s.top) {
                case End e -> {
                    return true;
                }
                case Num n when n.complete() -> {
                }
                case Seq q when q.at == q.parts.size() -> {
                }
                default -> {
                    return false;
                }
            }
        }
        return false;
    }

    // ---- the stack and its frames ----

    private record Stack(Frame top, Stack below) {
    }

    private sealed interface Frame {
    }

    /** Expecting a value of {@code shape}, after {@code ws} whitespace characters. */
    private record Value(Shape shape, int ws, int depth) implements Frame {
    }

    /** Inside a string: {@code length} characters so far, the lexical state in {@code lex}. */
    private record Str(int length, int min, int max, int lex) implements Frame {
    }

    /** Inside a number, in one of the phases below. */
    private record Num(boolean integer, int phase, int length) implements Frame {
        boolean complete() {
            return phase == ZERO || phase == INT || phase == FRAC || phase == EXP;
        }
    }

    /** Matching exact symbols; {@code at} of them matched. */
    private record Lit(int[] symbols, int at) implements Frame {
        @Override
        public boolean equals(Object o) {
            return o instanceof Lit l && l.at == at && Arrays.equals(l.symbols, symbols);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(symbols) + at;
        }
    }

    /**
     * Inside an object: {@code next} is the first declared property that may still come; {@code pending} the
     * property whose key was just read (-1: an additional key).
     */
    private record Obj(Shape.Object shape, int stage, int next, int pending, int ws, int depth) implements Frame {
    }

    /** Reading a key: its raw bytes so far (as written, escapes included) and the string's lexical state. */
    private record Key(Shape.Object shape, int next, byte[] typed, int lex, int depth) implements Frame {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && k.shape == shape && k.next == next && k.lex == lex && k.depth == depth
                    && Arrays.equals(k.typed, typed);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(typed) * 31 + next;
        }
    }

    /** Inside an array: {@code count} items begun so far. */
    private record Arr(Shape.Array shape, int count, int stage, int ws, int depth) implements Frame {
    }

    /** The parts of a sequence still to come, from {@code at}. */
    private record Seq(List<Shape> parts, int at, int depth) implements Frame {
    }

    /** After the root: only whitespace. */
    private record End(int ws) implements Frame {
    }

    // number phases
    private static final int MINUS = 1, ZERO = 2, INT = 3, DOT = 4, FRAC = 5, E = 6, E_SIGN = 7, EXP = 8;
    // object and array stages
    private static final int OPEN = 0, COLON = 1, AFTER = 2, COMMA = 3;
    // string lexical states: 0 plain; 1 after a backslash; 2-5 hex digits of \\u left + 1; 8 + n: n UTF-8
    // continuation bytes expected; CLOSED once the closing quote came
    private static final int PLAIN = 0, BACKSLASH = 1, CLOSED = -1;
    // after a lead byte whose next byte has a narrower range than 80-BF
    private static final int E0 = 16, ED = 17, F0 = 18, F4 = 19;

    private static boolean isWhitespace(int c) {
        return c == ' ' || c == '\n' || c == '\t' || c == '\r';
    }

    /** A refused whitespace step; a run's state is 0 (none yet), SPACE (one space), or 1 + its indentation. */
    private static final int NO = Integer.MIN_VALUE, SPACE = -1;

    /** The whitespace run after {@code c}, or {@link #NO}: one space, or a newline and up to MAX_INDENT more. */
    private static int whitespace(int run, int c) {
        if (run == 0) {
            return c == ' ' ? SPACE : c == '\n' ? 1 : NO;
        }
        return run >= 1 && run <= MAX_INDENT && (c == ' ' || c == '\t') ? run + 1 : NO;
    }

    private static void feed(Stack s, int c, List<Stack> out) {
        Stack below = s.below;
        switch (s.top) {
            case End e -> {
                int ws = whitespace(e.ws, c);
                if (ws != NO) {
                    out.add(new Stack(new End(ws), null));
                }
            }
            case Value v -> {
                if (isWhitespace(c) && takesWhitespace(v.shape)) {
                    int ws = whitespace(v.ws, c);
                    if (ws != NO) {
                        out.add(new Stack(new Value(v.shape, ws, v.depth), below));
                    }
                    return;
                }
                begin(v.shape, v.depth, c, below, out, 0);
            }
            case Str t -> {
                int lex = string(t.lex, c);
                if (lex == CLOSED) {
                    if (t.length >= t.min) {
                        out.add(below);
                    }
                } else if (lex != Integer.MIN_VALUE) {
                    int length = t.length + (startsCharacter(t.lex, lex) ? 1 : 0);
                    if (length <= t.max) {
                        out.add(new Stack(new Str(length, t.min, t.max, lex), below));
                    }
                }
            }
            case Num n -> {
                int phase = number(n, c);
                if (phase > 0 && n.length < MAX_NUMBER) {
                    out.add(new Stack(new Num(n.integer, phase, n.length + 1), below));
                } else if (n.complete()) {
                    feed(below, c, out);
                }
            }
            case Lit l -> {
                if (l.symbols[l.at] == c) {
                    out.add(l.at + 1 == l.symbols.length ? below : new Stack(new Lit(l.symbols, l.at + 1), below));
                }
            }
            case Seq q -> {
                if (q.at == q.parts.size()) {
                    feed(below, c, out);
                } else {
                    Stack rest = new Stack(new Seq(q.parts, q.at + 1, q.depth), below);
                    feed(new Stack(new Value(q.parts.get(q.at), 0, q.depth), rest), c, out);
                }
            }
            case Obj o -> object(o, c, below, out);
            case Key k -> key(k, c, below, out);
            case Arr a -> array(a, c, below, out);
        }
    }

    /** Whether whitespace may come before {@code shape}: JSON values yes, raw text no. */
    private static boolean takesWhitespace(Shape shape) {
        return switch (shape) {
            case Shape.Raw r -> false;
            case Shape.Sequence q -> q.parts().isEmpty() || takesWhitespace(q.parts().getFirst());
            default -> true;
        };
    }

    /**
     * The first symbol of a value of {@code shape}. {@code hops} counts the references and alternatives followed
     * without taking a symbol: a schema that only refers to itself ({@code {"$ref": "#"}}) allows nothing.
     */
    private static void begin(Shape shape, int depth, int c, Stack below, List<Stack> out, int hops) {
        if (hops > MAX_DEPTH) {
            return;
        }
        switch (shape) {
            case Shape.AnyValue any -> {
                switch (c) {
                    case '{' -> begin(JsonSchemas.anyObject(), depth, c, below, out, hops + 1);
                    case '[' -> begin(new Shape.Array(any, 0, Integer.MAX_VALUE), depth, c, below, out, hops + 1);
                    case '"' -> begin(new Shape.Text(0, Integer.MAX_VALUE), depth, c, below, out, hops + 1);
                    case 't' -> begin(Shape.Literal.of("true"), depth, c, below, out, hops + 1);
                    case 'f' -> begin(Shape.Literal.of("false"), depth, c, below, out, hops + 1);
                    case 'n' -> begin(Shape.Literal.of("null"), depth, c, below, out, hops + 1);
                    default -> begin(new Shape.Number(false), depth, c, below, out, hops + 1);
                }
            }
            case Shape.Text t -> {
                if (c == '"') {
                    out.add(new Stack(new Str(0, t.minLength(), t.maxLength(), PLAIN), below));
                }
            }
            case Shape.Number n -> {
                int phase = c == '-' ? MINUS : c == '0' ? ZERO : c >= '1' && c <= '9' ? INT : 0;
                if (phase > 0) {
                    out.add(new Stack(new Num(n.integer(), phase, 1), below));
                }
            }
            case Shape.Literal l -> exact(l.symbols(), c, below, out);
            case Shape.Raw r -> exact(r.symbols(), c, below, out);
            case Shape.Object o -> {
                if (c == '{' && depth < MAX_DEPTH) {
                    out.add(new Stack(new Obj(o, OPEN, 0, -1, 0, depth), below));
                }
            }
            case Shape.Array a -> {
                if (c == '[' && depth < MAX_DEPTH) {
                    out.add(new Stack(new Arr(a, 0, OPEN, 0, depth), below));
                }
            }
            case Shape.AnyOf any -> {
                for (Shape option : any.options()) {
                    begin(option, depth, c, below, out, hops + 1);
                }
            }
            case Shape.Sequence q -> {
                if (q.parts().isEmpty()) {
                    feed(below, c, out);
                } else {
                    Stack rest = new Stack(new Seq(q.parts(), 1, depth), below);
                    begin(q.parts().getFirst(), depth, c, rest, out, hops + 1);
                }
            }
            case Shape.Reference r -> begin(r.resolve(), depth, c, below, out, hops + 1);
        }
    }

    private static void exact(int[] symbols, int c, Stack below, List<Stack> out) {
        if (symbols.length > 0 && symbols[0] == c) {
            out.add(symbols.length == 1 ? below : new Stack(new Lit(symbols, 1), below));
        }
    }

    private static void object(Obj o, int c, Stack below, List<Stack> out) {
        if (isWhitespace(c)) {
            int ws = whitespace(o.ws, c);
            if (ws != NO) {
                out.add(new Stack(new Obj(o.shape, o.stage, o.next, o.pending, ws, o.depth), below));
            }
            return;
        }
        switch (o.stage) {
            case OPEN, COMMA -> {
                if (c == '"' && (o.stage == OPEN || canContinue(o))) {
                    out.add(new Stack(new Key(o.shape, o.next, new byte[0], PLAIN, o.depth), below));
                } else if (c == '}' && o.stage == OPEN && canClose(o)) {
                    out.add(below);
                }
            }
            case COLON -> {
                if (c == ':') {
                    Shape value;
                    int next = o.next;
                    if (o.pending >= 0) {
                        value = o.shape.properties().get(o.pending).value();
                        next = o.pending + 1;
                    } else {
                        value = o.shape.additional();
                    }
                    Stack after = new Stack(new Obj(o.shape, AFTER, next, -1, 0, o.depth), below);
                    out.add(new Stack(new Value(value, 0, o.depth + 1), after));
                }
            }
            case AFTER -> {
                if (c == ',' && canContinue(o)) {
                    out.add(new Stack(new Obj(o.shape, COMMA, o.next, -1, 0, o.depth), below));
                } else if (c == '}' && canClose(o)) {
                    out.add(below);
                }
            }
            default -> throw new IllegalStateException("object stage " + o.stage);
        }
    }

    /** No required property is still to come. */
    private static boolean canClose(Obj o) {
        var props = o.shape.properties();
        for (int i = o.next; i < props.size(); i++) {
            if (props.get(i).required()) {
                return false;
            }
        }
        return true;
    }

    /** Another key may come: a declared property is left, or additional keys are allowed. */
    private static boolean canContinue(Obj o) {
        return o.next < o.shape.properties().size() || o.shape.additional() != null;
    }

    /** The declared properties whose key may come next: from {@code next} up to and including the first required. */
    private static int candidatesEnd(Shape.Object shape, int next) {
        var props = shape.properties();
        for (int i = next; i < props.size(); i++) {
            if (props.get(i).required()) {
                return i + 1;
            }
        }
        return props.size();
    }

    private static void key(Key k, int c, Stack below, List<Stack> out) {
        int lex = string(k.lex, c);
        if (lex == Integer.MIN_VALUE) {
            return;
        }
        var props = k.shape.properties();
        int end = candidatesEnd(k.shape, k.next);
        if (lex == CLOSED) {
            for (int i = k.next; i < end; i++) {
                if (Arrays.equals(k.typed, props.get(i).key())) {
                    out.add(new Stack(new Obj(k.shape, COLON, k.next, i, 0, k.depth), below));
                    return;
                }
            }
            if (k.shape.additional() != null && props.stream().noneMatch(p -> Arrays.equals(k.typed, p.key()))) {
                out.add(new Stack(new Obj(k.shape, COLON, k.next, -1, 0, k.depth), below));
            }
            return;
        }
        byte[] typed = Arrays.copyOf(k.typed, k.typed.length + 1);
        typed[k.typed.length] = (byte) c;
        boolean possible = k.shape.additional() != null;
        for (int i = k.next; i < end && !possible; i++) {
            byte[] name = props.get(i).key();
            possible = name.length >= typed.length && Arrays.equals(name, 0, typed.length, typed, 0, typed.length);
        }
        if (possible) {
            out.add(new Stack(new Key(k.shape, k.next, typed, lex, k.depth), below));
        }
    }

    private static void array(Arr a, int c, Stack below, List<Stack> out) {
        if (isWhitespace(c)) {
            int ws = whitespace(a.ws, c);
            if (ws != NO) {
                out.add(new Stack(new Arr(a.shape, a.count, a.stage, ws, a.depth), below));
            }
            return;
        }
        Shape.Array shape = a.shape;
        if (a.stage == OPEN && c == ']') {
            if (shape.minItems() == 0) {
                out.add(below);
            }
            return;
        }
        if (a.stage == AFTER) {
            if (c == ',' && a.count < shape.maxItems()) {
                Stack after = new Stack(new Arr(shape, a.count + 1, AFTER, 0, a.depth), below);
                out.add(new Stack(new Value(shape.items(), 0, a.depth + 1), after));
            } else if (c == ']' && a.count >= shape.minItems()) {
                out.add(below);
            }
            return;
        }
        if (shape.maxItems() > 0) { // OPEN: the first item begins with this symbol
            Stack after = new Stack(new Arr(shape, 1, AFTER, 0, a.depth), below);
            begin(shape.items(), a.depth + 1, c, after, out, 0);
        }
    }

    /** The next phase of a number after {@code c}, or 0 where c does not continue it. */
    private static int number(Num n, int c) {
        boolean digit = c >= '0' && c <= '9';
        boolean exponent = (c == 'e' || c == 'E') && !n.integer;
        return switch (n.phase) {
            case MINUS -> c == '0' ? ZERO : digit ? INT : 0;
            case ZERO -> c == '.' && !n.integer ? DOT : exponent ? E : 0;
            case INT -> digit ? INT : c == '.' && !n.integer ? DOT : exponent ? E : 0;
            case DOT -> digit ? FRAC : 0;
            case FRAC -> digit ? FRAC : exponent ? E : 0;
            case E -> c == '+' || c == '-' ? E_SIGN : digit ? EXP : 0;
            case E_SIGN, EXP -> digit ? EXP : 0;
            default -> 0;
        };
    }

    /**
     * The lexical state of a string after {@code c}: {@link #CLOSED} at the closing quote, Integer.MIN_VALUE where
     * c is not allowed.
     */
    private static int string(int lex, int c) {
        if (c > 0xFF) {
            return Integer.MIN_VALUE; // a special token is never part of a string
        }
        if (lex >= 8) { // inside a multi-byte character: the continuation bytes strict UTF-8 allows
            int low = 0x80, high = 0xBF, left;
            switch (lex) {
                case E0 -> { low = 0xA0; left = 1; }  // no overlong three-byte forms
                case ED -> { high = 0x9F; left = 1; } // no surrogates
                case F0 -> { low = 0x90; left = 2; }  // no overlong four-byte forms
                case F4 -> { high = 0x8F; left = 2; } // nothing above U+10FFFF
                default -> left = lex - 8 - 1;
            }
            if (c < low || c > high) {
                return Integer.MIN_VALUE;
            }
            return left == 0 ? PLAIN : 8 + left;
        }
        if (lex == BACKSLASH) {
            return switch (c) {
                case '"', '\\', '/', 'b', 'f', 'n', 'r', 't' -> PLAIN;
                case 'u' -> 5;
                default -> Integer.MIN_VALUE;
            };
        }
        if (lex >= 2) { // \\u and its four hex digits
            boolean hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            return !hex ? Integer.MIN_VALUE : lex == 2 ? PLAIN : lex - 1;
        }
        if (c == '"') {
            return CLOSED;
        }
        if (c == '\\') {
            return BACKSLASH;
        }
        if (c < 0x20) {
            return Integer.MIN_VALUE; // control characters must be escaped
        }
        if (c < 0x80) {
            return PLAIN;
        }
        return switch (c) {
            case 0xE0 -> E0;
            case 0xED -> ED;
            case 0xF0 -> F0;
            case 0xF4 -> F4;
            default -> c >= 0xC2 && c <= 0xDF ? 8 + 1 : c >= 0xE1 && c <= 0xEF ? 8 + 2 : c >= 0xF1 && c <= 0xF3 ? 8 + 3
                    : Integer.MIN_VALUE;
        };
    }

    /** Whether the step from {@code before} to {@code after} began a character (the length counts characters). */
    private static boolean startsCharacter(int before, int after) {
        return before == PLAIN && after != CLOSED;
    }
}
