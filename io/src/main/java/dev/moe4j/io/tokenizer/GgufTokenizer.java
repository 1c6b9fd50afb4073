package dev.moe4j.io.tokenizer;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.gguf.GgufFields;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * Builds a {@link Tokenizer} from a GGUF file's {@code tokenizer.ggml.*} metadata, out of the same parts a
 * tokenizer.json is read into, so that it tokenises as llama.cpp does:
 * <ul>
 *   <li>{@code gpt2}: byte-level BPE with the file's merges, pre-tokenised by the regular expressions llama.cpp
 *   runs for {@code tokenizer.ggml.pre};</li>
 *   <li>{@code llama}: SentencePiece-style BPE, where llama.cpp merges the adjacent pair whose concatenation is the
 *   highest-scoring token (leftmost on equal scores), spaces become "▁" (one prepended to each run of text when
 *   {@code add_space_prefix}), and characters outside the vocabulary fall back to {@code <0xNN>} byte tokens. The
 *   merges are those pairs, ranked by the score of what they make; equal scores share a rank.</li>
 * </ul>
 * Control and unknown tokens become special added tokens, user-defined tokens added ones; BOS and EOS are added as
 * {@code add_bos_token} and {@code add_eos_token} say, with llama.cpp's defaults.
 */
final class GgufTokenizer {
    static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    private static final String SPACE = "\u2581";
    private static final String GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
    private static final String QWEN2 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final String LLAMA3 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** llama.cpp's pre-tokenizer for a {@code gpt2} vocabulary without a known name: four splits in turn. */
    private static final List<String> DEFAULT = List.of("[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+",
            "[0-9][0-9][0-9]");
    private static final Map<String, List<String>> PRE = Map.of("default", DEFAULT, "gpt-2", List.of(GPT2),
            "olmo", List.of(GPT2), "mpt", List.of(GPT2), "qwen2", List.of(QWEN2), "llama-bpe", List.of(LLAMA3),
            "llama3", List.of(LLAMA3), "llama-v3", List.of(LLAMA3));

    private final GgufFields f;
    private final List<String> tokens;
    private final int[] types;

    private GgufTokenizer(GgufFields f, List<String> tokens, int[] types) {
        this.f = f;
        this.tokens = tokens;
        this.types = types;
    }

    static Tokenizer read(GgufFields f) {
        String key = "tokenizer.ggml.tokens";
        List<String> tokens = f.strings(key).orElseThrow(() -> f.error(key, "is missing: the file has no"
                + " vocabulary, so moe4j cannot tokenise text for it"));
        if (tokens.isEmpty()) {
            throw f.error(key, "is empty");
        }
        int[] types = f.ints("tokenizer.ggml.token_type").orElseGet(() -> {
            int[] normal = new int[tokens.size()];
            Arrays.fill(normal, NORMAL);
            return normal;
        });
        if (types.length != tokens.size()) {
            throw f.error("tokenizer.ggml.token_type", "has " + types.length + " entries for " + tokens.size()
                    + " tokens");
        }
        return new GgufTokenizer(f, tokens, types).build();
    }

    private Tokenizer build() {
        String model = f.string("tokenizer.ggml.model").orElseThrow(() -> f.error("tokenizer.ggml.model",
                "is missing (expected gpt2 or llama)"));
        boolean spm = switch (model) {
            case "llama" -> true;
            case "gpt2" -> false;
            default -> throw f.error("tokenizer.ggml.model", "is " + BadInputException.quote(model)
                    + "; moe4j reads the gpt2 (byte-level"
                    + " BPE) and llama (SentencePiece BPE) vocabularies");
        };
        String pre = spm ? "" : f.string("tokenizer.ggml.pre").orElse("default");
        List<String> splits = spm ? List.of() : PRE.get(pre);
        if (splits == null) {
            throw f.error("tokenizer.ggml.pre", "is " + BadInputException.quote(pre)
                    + ", a pre-tokenizer moe4j does not know; it knows "
                    + String.join(", ", new TreeSet<>(PRE.keySet())));
        }
        boolean llama3 = splits.contains(LLAMA3);
        OptionalInt bos = id("tokenizer.ggml.bos_token_id", spm ? OptionalInt.of(1) : OptionalInt.empty());
        OptionalInt eos = id("tokenizer.ggml.eos_token_id", spm ? OptionalInt.of(2) : OptionalInt.empty());
        OptionalInt unk = id("tokenizer.ggml.unknown_token_id", spm ? OptionalInt.of(0) : OptionalInt.empty());
        boolean addBos = f.bool("tokenizer.ggml.add_bos_token").orElse(spm || llama3);
        boolean addEos = f.bool("tokenizer.ggml.add_eos_token").orElse(false);
        var before = new ArrayList<PostProcessor.Special>();
        var after = new ArrayList<PostProcessor.Special>();
        if (addBos) {
            int id = bos.orElseThrow(() -> f.error("tokenizer.ggml.add_bos_token", "is true, but"
                    + " tokenizer.ggml.bos_token_id is not set"));
            before.add(new PostProcessor.Special(id, tokens.get(id)));
        }
        if (addEos) {
            int id = eos.orElseThrow(() -> f.error("tokenizer.ggml.add_eos_token", "is true, but"
                    + " tokenizer.ggml.eos_token_id is not set"));
            after.add(new PostProcessor.Special(id, tokens.get(id)));
        }

        var vocab = new HashMap<String, Integer>(tokens.size() * 2);
        var added = new ArrayList<AddedVocabulary.AddedToken>();
        for (int id = 0; id < tokens.size(); id++) {
            String t = tokens.get(id);
            // llama.cpp cuts control, user-defined and unknown tokens out of the text before it merges
            if (types[id] == CONTROL || types[id] == USER_DEFINED || types[id] == UNKNOWN) {
                added.add(new AddedVocabulary.AddedToken(id, t, false, false, false, false, types[id] != USER_DEFINED));
            }
            if (types[id] != CONTROL && types[id] != USER_DEFINED) {
                vocab.put(t, id); // a token listed twice is the later id, as in llama.cpp's map
            }
        }
        Normalizer normalizer = null;
        PreTokenizer preTokenizer;
        Decoder decoder;
        List<String[]> merges;
        int[] ranks = null;
        if (spm) {
            boolean prefix = f.bool("tokenizer.ggml.add_space_prefix").orElse(true);
            var replace = new Normalizer.Replace(Pattern.compile(" ", Pattern.LITERAL), SPACE, true);
            normalizer = prefix ? new Normalizer.Sequence(List.of(new Normalizer.Prepend(SPACE), replace)) : replace;
            preTokenizer = null;
            var steps = new ArrayList<Decoder>(List.of(new Decoder.Replace(new Normalizer.Replace(
                    Pattern.compile(SPACE, Pattern.LITERAL), " ", true)), new Decoder.ByteFallback(), new Decoder.Fuse()));
            if (prefix) {
                steps.add(new Decoder.Strip(' ', 1, 0));
            }
            decoder = new Decoder.Sequence(steps);
            float[] scores = f.floats("tokenizer.ggml.scores").orElse(new float[tokens.size()]);
            if (scores.length != tokens.size()) {
                throw f.error("tokenizer.ggml.scores", "has " + scores.length + " entries for " + tokens.size()
                        + " tokens");
            }
            merges = new ArrayList<>();
            ranks = scoreMerges(vocab, scores, merges);
        } else {
            var steps = new ArrayList<PreTokenizer>();
            for (String regex : splits) {
                steps.add(new PreTokenizer.Split(OnigRegex.compile(regex), SplitBehavior.parse("Isolated"), false));
            }
            steps.add(new PreTokenizer.ByteLevelSplit(false, false));
            preTokenizer = new PreTokenizer.Sequence(steps);
            decoder = new Decoder.ByteLevelBytes();
            merges = new ArrayList<>();
            List<String> listed = f.strings("tokenizer.ggml.merges").orElse(List.of());
            for (int i = 0; i < listed.size(); i++) {
                String m = listed.get(i);
                int space = m.indexOf(' ', 1);
                if (space < 0) {
                    throw f.error("tokenizer.ggml.merges", "entry " + i + " is " + BadInputException.quote(m)
                            + "; expected \"left right\"");
                }
                merges.add(new String[] {m.substring(0, space), m.substring(space + 1)});
            }
        }
        String unkToken = unk.isPresent() && vocab.containsKey(tokens.get(unk.getAsInt()))
                ? tokens.get(unk.getAsInt()) : null;
        BpeModel bpe;
        try {
            bpe = new BpeModel(vocab, merges, ranks, unkToken, null, null, false, spm, llama3);
        } catch (IllegalArgumentException e) {
            throw f.error("tokenizer.ggml.merges", "is not consistent with the tokens: "
                    + BadInputException.oneLine(e.getMessage()));
        }
        var addedVocabulary = new AddedVocabulary(added, normalizer);
        PostProcessor post = before.isEmpty() && after.isEmpty() ? null : new PostProcessor.Template(before, after);
        return new Tokenizer(f.file(), normalizer, preTokenizer, bpe, addedVocabulary, post, decoder);
    }

    /**
     * The merges of a SentencePiece-style vocabulary: every split of a token into two tokens, ranked by the token's
     * score (highest first; equal scores share a rank). Control and user-defined tokens, cut out of the text before
     * merging, are never made by a merge.
     */
    private static int[] scoreMerges(Map<String, Integer> vocab, float[] scores, List<String[]> merges) {
        var made = new ArrayList<String>();
        for (var e : vocab.entrySet()) {
            if (e.getKey().codePointCount(0, e.getKey().length()) > 1) {
                made.add(e.getKey());
            }
        }
        made.sort((a, b) -> {
            int c = Float.compare(scores[vocab.get(b)], scores[vocab.get(a)]);
            return c != 0 ? c : Integer.compare(vocab.get(a), vocab.get(b));
        });
        var ranks = new ArrayList<Integer>();
        int rank = -1;
        float previous = Float.NaN;
        for (String t : made) {
            float s = scores[vocab.get(t)];
            if (rank < 0 || Float.compare(s, previous) != 0) {
                rank++;
                previous = s;
            }
            for (int i = t.offsetByCodePoints(0, 1); i < t.length(); i = t.offsetByCodePoints(i, 1)) {
                String left = t.substring(0, i), right = t.substring(i);
                if (vocab.containsKey(left) && vocab.containsKey(right)) {
                    merges.add(new String[] {left, right});
                    ranks.add(rank);
                }
            }
        }
        return ranks.stream().mapToInt(Integer::intValue).toArray();
    }

    private OptionalInt id(String key, OptionalInt fallback) {
        var v = f.integer(key, 0);
        if (v.isEmpty()) {
            return fallback.isPresent() && fallback.getAsInt() < tokens.size() ? fallback : OptionalInt.empty();
        }
        if (v.getAsLong() >= tokens.size()) {
            throw f.error(key, "is " + v.getAsLong() + " but the vocabulary has " + tokens.size() + " tokens");
        }
        return OptionalInt.of((int) v.getAsLong());
    }

}
