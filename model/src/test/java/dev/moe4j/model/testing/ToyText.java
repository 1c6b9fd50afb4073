package dev.moe4j.model.testing;

import dev.moe4j.model.generate.TokenText;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Byte-level token text for tests: each id stands for a few bytes of UTF-8, so a character may be split over
 * two ids, as in byte-level BPE. Ids 0..9 are the digits "0".."9" preceded by a space; id 62 is the first byte of
 * "é" and id 63 its second byte; any other id is "w" followed by the id.
 */
public final class ToyText implements TokenText {
    public static final int E_ACUTE_FIRST = 62;
    public static final int E_ACUTE_SECOND = 63;

    public static byte[] bytes(int id) {
        return switch (id) {
            case E_ACUTE_FIRST -> Arrays.copyOfRange("é".getBytes(StandardCharsets.UTF_8), 0, 1);
            case E_ACUTE_SECOND -> Arrays.copyOfRange("é".getBytes(StandardCharsets.UTF_8), 1, 2);
            default -> (id < 10 ? " " + id : "w" + id).getBytes(StandardCharsets.UTF_8);
        };
    }

    /** The whole text of a sequence of ids (bytes that do not form a character become U+FFFD). */
    public static String decode(int... ids) {
        var out = new ByteArrayOutputStream();
        for (int id : ids) {
            out.writeBytes(bytes(id));
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Override
    public Incremental incremental() {
        return new Incremental() {
            private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

            @Override
            public String step(int id) {
                pending.writeBytes(bytes(id));
                byte[] b = pending.toByteArray();
                int complete = completePrefix(b);
                pending.reset();
                pending.write(b, complete, b.length - complete);
                return new String(b, 0, complete, StandardCharsets.UTF_8);
            }

            @Override
            public String finish() {
                String rest = pending.toString(StandardCharsets.UTF_8);
                pending.reset();
                return rest;
            }
        };
    }

    @Override
    public String of(int id) {
        return decode(id);
    }

    /** The length of the longest prefix that does not end inside a UTF-8 character. */
    private static int completePrefix(byte[] b) {
        int i = b.length;
        int back = 0;
        while (i > 0 && back < 4 && (b[i - 1] & 0xC0) == 0x80) {
            i--;
            back++;
        }
        if (i == 0) {
            return b.length;
        }
        int lead = b[i - 1] & 0xFF;
        int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        return (b.length - (i - 1)) >= need ? b.length : i - 1;
    }
}
