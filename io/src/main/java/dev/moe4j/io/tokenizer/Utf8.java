package dev.moe4j.io.tokenizer;

/**
 * UTF-8 decoding with the replacement rule of the Unicode standard ("maximal subpart": each maximal prefix of a
 * valid sequence, or each lone bad byte, becomes one U+FFFD), which is what Rust's {@code from_utf8_lossy} does and
 * so what the reference decoders produce. Written out rather than left to the JDK so the rule is explicit.
 */
final class Utf8 {
    static final char REPLACEMENT = '\uFFFD';

    private Utf8() {
    }

    /** Decodes bytes, replacing invalid parts as the reference does. */
    static String decodeLossy(byte[] bytes, int length) {
        var out = new StringBuilder(length);
        int i = 0;
        while (i < length) {
            int b0 = bytes[i] & 0xFF;
            if (b0 < 0x80) {
                out.append((char) b0);
                i++;
                continue;
            }
            int need;
            int lo = 0x80, hi = 0xBF; // allowed range of the second byte
            if (b0 >= 0xC2 && b0 <= 0xDF) {
                need = 1;
            } else if (b0 >= 0xE0 && b0 <= 0xEF) {
                need = 2;
                if (b0 == 0xE0) lo = 0xA0;
                if (b0 == 0xED) hi = 0x9F;
            } else if (b0 >= 0xF0 && b0 <= 0xF4) {
                need = 3;
                if (b0 == 0xF0) lo = 0x90;
                if (b0 == 0xF4) hi = 0x8F;
            } else {
                out.append(REPLACEMENT);
                i++;
                continue;
            }
            int cp = b0 & (0x3F >> need);
            int j = 1;
            for (; j <= need; j++) {
                if (i + j >= length) break;
                int b = bytes[i + j] & 0xFF;
                int min = j == 1 ? lo : 0x80, max = j == 1 ? hi : 0xBF;
                if (b < min || b > max) break;
                cp = (cp << 6) | (b & 0x3F);
            }
            if (j <= need) {
                out.append(REPLACEMENT); // the valid prefix (at least the lead byte) becomes one replacement
                i += j;
            } else {
                out.appendCodePoint(cp);
                i += need + 1;
            }
        }
        return out.toString();
    }

    /** Whether the bytes are valid UTF-8 as a whole. */
    static boolean isValid(byte[] bytes, int length) {
        try {
            java.nio.charset.StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes, 0, length));
            return true;
        } catch (java.nio.charset.CharacterCodingException e) {
            return false;
        }
    }
}
