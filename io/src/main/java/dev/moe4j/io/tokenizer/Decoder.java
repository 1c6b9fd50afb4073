package dev.moe4j.io.tokenizer;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns token strings back into text (tokenizer.json's "decoder"). Each step maps the list of token strings to a
 * new list, as the reference's decode_chain does; the text is the concatenation of the last list. Steps that work
 * per token (Strip, Replace, Metaspace) therefore see whole tokens unless a Fuse came before them.
 */
sealed interface Decoder {
    List<String> decodeChain(List<String> tokens);

    default String decode(List<String> tokens) {
        return String.join("", decodeChain(tokens));
    }

    /**
     * The bytes a single token becomes in the middle of a text: the per-token steps of {@code d} applied in order,
     * without the ones that only act at the start or end of a text (Metaspace's first-token drop, Strip).
     */
    static byte[] midTextBytes(Decoder d, String token) {
        Object t = midText(d, token);
        return t instanceof byte[] b ? b : ((String) t).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    /** A String while the token is still text, byte[] once a step turned it into bytes. */
    private static Object midText(Decoder d, String token) {
        return switch (d) {
            case Sequence s -> {
                Object t = token;
                for (Decoder step : s.steps()) {
                    if (t instanceof byte[]) break;
                    t = midText(step, (String) t);
                }
                yield t;
            }
            case ByteLevelBytes b -> {
                var out = new ByteArrayOutputStream();
                ByteLevel.appendBytes(token, out);
                yield out.toByteArray();
            }
            case Metaspace m -> token.replace(m.replacement(), ' ');
            case ByteFallback b -> {
                int v = ByteFallback.byteToken(token);
                yield v >= 0 ? new byte[] {(byte) v} : token;
            }
            case Replace r -> r.replace().normalize(token);
            case Fuse f -> token;
            case Strip s -> token;
        };
    }

    /** Runs decoders in order. */
    record Sequence(List<Decoder> steps) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            for (Decoder d : steps) tokens = d.decodeChain(tokens);
            return tokens;
        }
    }

    /** Byte-level: the byte characters of all tokens back to bytes, then UTF-8 with invalid parts replaced. */
    record ByteLevelBytes() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            var bytes = new ByteArrayOutputStream();
            for (String t : tokens) ByteLevel.appendBytes(t, bytes);
            byte[] b = bytes.toByteArray();
            return List.of(Utf8.decodeLossy(b, b.length));
        }
    }

    /** Replacement characters back to spaces; in the first token they are dropped unless nothing was prepended. */
    record Metaspace(char replacement, PreTokenizer.PrependScheme prependScheme) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            var out = new ArrayList<String>(tokens.size());
            for (int i = 0; i < tokens.size(); i++) {
                String t = tokens.get(i);
                boolean drop = i == 0 && prependScheme != PreTokenizer.PrependScheme.NEVER;
                out.add(drop ? t.replace(String.valueOf(replacement), "") : t.replace(replacement, ' '));
            }
            return out;
        }
    }

    /**
     * Runs of {@code <0xNN>} tokens back to text: the bytes of a run become one string if they are valid UTF-8,
     * otherwise one U+FFFD per byte.
     */
    record ByteFallback() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            var out = new ArrayList<String>(tokens.size());
            var run = new ByteArrayOutputStream();
            for (String t : tokens) {
                int b = byteToken(t);
                if (b >= 0) {
                    run.write(b);
                    continue;
                }
                flush(run, out);
                out.add(t);
            }
            flush(run, out);
            return out;
        }

        private static void flush(ByteArrayOutputStream run, List<String> out) {
            if (run.size() == 0) return;
            byte[] b = run.toByteArray();
            if (Utf8.isValid(b, b.length)) {
                out.add(new String(b, java.nio.charset.StandardCharsets.UTF_8));
            } else {
                for (int i = 0; i < b.length; i++) out.add(String.valueOf(Utf8.REPLACEMENT));
            }
            run.reset();
        }

        /** The byte of a {@code <0xNN>} token, or -1. */
        static int byteToken(String t) {
            if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') return -1;
            int hi = Character.digit(t.charAt(3), 16), lo = Character.digit(t.charAt(4), 16);
            return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
        }
    }

    /** Joins all tokens into one. */
    record Fuse() implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            return List.of(String.join("", tokens));
        }
    }

    /** Removes up to {@code start} leading and {@code stop} trailing copies of a character from each token. */
    record Strip(int content, int start, int stop) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            var out = new ArrayList<String>(tokens.size());
            for (String t : tokens) {
                int[] cps = t.codePoints().toArray();
                int from = 0;
                while (from < start && from < cps.length && cps[from] == content) from++;
                int to = cps.length;
                for (int k = 0; k < Math.min(stop, cps.length - from) && cps[to - 1] == content; k++) to--;
                out.add(new String(cps, from, to - from));
            }
            return out;
        }
    }

    /** Applies a Replace normalizer to each token. */
    record Replace(Normalizer.Replace replace) implements Decoder {
        @Override
        public List<String> decodeChain(List<String> tokens) {
            var out = new ArrayList<String>(tokens.size());
            for (String t : tokens) out.add(replace.normalize(t));
            return out;
        }
    }
}
