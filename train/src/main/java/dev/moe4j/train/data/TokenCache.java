package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.tokenizer.Tokenizer;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Tokenised text kept on disk, keyed by a hash of the tokenizer and of the text, so that a corpus is tokenised
 * once however many runs train on it. A damaged or foreign cache file is ignored and rewritten.
 */
public final class TokenCache {
    private static final int MAGIC = 0x4D4F4554; // "MOET"
    private static final int VERSION = 1;

    private final Path folder;

    public TokenCache(Path folder) {
        this.folder = folder;
    }

    /** ${MOE4J_CACHE}, else ~/.cache/moe4j. */
    public static TokenCache defaultCache() {
        String env = System.getenv("MOE4J_CACHE");
        Path folder = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "moe4j");
        return new TokenCache(folder);
    }

    public Path folder() {
        return folder;
    }

    /**
     * The documents tokenised with {@code tokenizer} and packed into one stream, with {@code separator} (if ≥ 0)
     * after each document; read from the cache when this exact text and tokenizer were seen before.
     */
    public TokenStream tokenize(Tokenizer tokenizer, byte[] tokenizerIdentity, List<TextCorpus.Document> documents, int separator) {
        String key = key(tokenizerIdentity, documents, separator);
        Path file = folder.resolve("tokens-" + key + ".bin");
        TokenStream cached = read(file);
        if (cached != null) {
            return cached;
        }
        var starts = new int[documents.size()];
        var names = new ArrayList<String>();
        var parts = new ArrayList<int[]>();
        int total = 0;
        for (int d = 0; d < documents.size(); d++) {
            int[] ids = tokenizer.encodeIds(documents.get(d).text(), false);
            starts[d] = total;
            names.add(documents.get(d).name());
            parts.add(ids);
            total = Math.addExact(total, ids.length + (separator >= 0 ? 1 : 0));
        }
        int[] tokens = new int[total];
        int at = 0;
        for (int[] ids : parts) {
            System.arraycopy(ids, 0, tokens, at, ids.length);
            at += ids.length;
            if (separator >= 0) {
                tokens[at++] = separator;
            }
        }
        var stream = new TokenStream(tokens, starts, names);
        write(file, stream);
        return stream;
    }

    static String key(byte[] tokenizerIdentity, List<TextCorpus.Document> documents, int separator) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(tokenizerIdentity);
            sha.update(Integer.toString(separator).getBytes(StandardCharsets.UTF_8));
            for (var d : documents) {
                sha.update((byte) 0);
                sha.update(d.name().getBytes(StandardCharsets.UTF_8));
                sha.update((byte) 0);
                sha.update(d.text().getBytes(StandardCharsets.UTF_8));
            }
            return HexFormat.of().formatHex(sha.digest(), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static TokenStream read(Path file) {
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try (var in = new DataInputStream(new BufferedInputStream(Files.newInputStream(file)))) {
            if (in.readInt() != MAGIC || in.readInt() != VERSION) {
                return null;
            }
            int docs = in.readInt();
            int[] starts = new int[docs];
            var names = new ArrayList<String>();
            for (int d = 0; d < docs; d++) {
                starts[d] = in.readInt();
                names.add(in.readUTF());
            }
            int[] tokens = new int[in.readInt()];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = in.readInt();
            }
            return new TokenStream(tokens, starts, names);
        } catch (IOException | RuntimeException e) {
            return null; // a damaged cache is only a cache: tokenise again
        }
    }

    private static void write(Path file, TokenStream stream) {
        Path temp;
        try {
            temp = AtomicFiles.temporaryBeside(file);
        } catch (BadInputException e) {
            return; // an unwritable cache folder costs time, not correctness
        }
        try (var out = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(temp)))) {
            out.writeInt(MAGIC);
            out.writeInt(VERSION);
            out.writeInt(stream.documentStarts().length);
            for (int d = 0; d < stream.documentStarts().length; d++) {
                out.writeInt(stream.documentStarts()[d]);
                out.writeUTF(stream.documentNames().get(d));
            }
            out.writeInt(stream.tokens().length);
            for (int t : stream.tokens()) {
                out.writeInt(t);
            }
        } catch (IOException e) {
            AtomicFiles.deleteQuietly(temp);
            return;
        }
        AtomicFiles.commit(temp, file);
    }
}
