package dev.moe4j.io.gguf;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A model's vocabulary as GGUF's {@code tokenizer.ggml.*} metadata describes it, for llama.cpp's tokenizers:
 * {@code gpt2} (byte-level BPE: tokens, types and merges) or {@code llama} (SentencePiece style: tokens, types and
 * scores). It holds exactly the model's vocab_size tokens, because llama.cpp takes the vocabulary's size as the
 * number of rows of the embedding and the LM head; ids a tokenizer does not use are filled with unused
 * {@code [PADn]} tokens, as llama.cpp's own converter does.
 *
 * @param model         {@code tokenizer.ggml.model}
 * @param pre           {@code tokenizer.ggml.pre}: llama.cpp's name of the pre-tokenizer (gpt2 vocabularies)
 * @param scores        one per token for {@code llama} vocabularies, empty otherwise
 * @param merges        "left right" pairs by rank for {@code gpt2} vocabularies (possibly none), empty otherwise
 * @param addSpacePrefix whether a {@code llama} vocabulary prepends "▁" to the text, empty otherwise
 */
public record GgufVocabulary(String model, Optional<String> pre, List<String> tokens, List<Integer> types,
                             Optional<float[]> scores, Optional<List<String>> merges, Optional<Boolean> addSpacePrefix,
                             OptionalInt unknownId) {
    /** llama.cpp's token types (tokenizer.ggml.token_type). */
    public static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    /** The split pattern of Qwen2's tokenizer.json, which llama.cpp knows as the pre-tokenizer "qwen2". */
    private static final String QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
            + " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final Pattern BYTE_TOKEN = Pattern.compile("<0x[0-9A-Fa-f]{2}>");
    private static final String SPIECE_SPACE = "\u2581";

    public GgufVocabulary {
        tokens = List.copyOf(tokens);
        types = List.copyOf(types);
        merges = merges.map(List::copyOf);
        int n = tokens.size();
        if (types.size() != n || scores.map(s -> s.length != n).orElse(false)) {
            throw new IllegalArgumentException("a vocabulary needs one type and one score (if any) per token");
        }
    }

    /**
     * A vocabulary for a model without a tokenizer (moe4j's benchmark models are run on token ids): {@code size}
     * distinct tokens {@code <t0>}, {@code <t1>}, ... of printable ASCII (llama.cpp decodes every gpt2 token's
     * text at load, and byte-level decoding knows only those characters), the {@code special} ids marked as
     * control tokens, no merges.
     */
    public static GgufVocabulary synthetic(int size, Set<Integer> special) {
        var tokens = new ArrayList<String>(size);
        var types = new ArrayList<Integer>(size);
        for (int i = 0; i < size; i++) {
            tokens.add("<t" + i + ">");
            types.add(special.contains(i) ? CONTROL : NORMAL);
        }
        return new GgufVocabulary("gpt2", Optional.of("default"), tokens, types, Optional.empty(),
                Optional.of(List.of()), Optional.empty(), OptionalInt.empty());
    }

    /**
     * The vocabulary of a Hugging Face tokenizer.json (a BPE model) for a model of {@code vocabSize} ids: byte-level
     * BPE becomes a {@code gpt2} vocabulary with its merges; metaspace BPE (Llama/Mistral's SentencePiece style,
     * "▁" for spaces, {@code <0xNN>} byte tokens) becomes a {@code llama} vocabulary whose scores follow the merge
     * ranks (llama.cpp merges the pair whose result scores highest, so an earlier merge scores higher).
     */
    public static GgufVocabulary fromTokenizerJson(Path file, int vocabSize) {
        JsonNode root = Json.read(file);
        JsonNode model = root.path("model");
        if (!model.path("type").asText("BPE").equals("BPE") || !model.path("vocab").isObject()) {
            throw new BadInputException(file + ": model: expected a BPE model with a vocab; got "
                    + (model.has("type") ? "type '" + model.path("type").asText() + "'" : "no vocab"));
        }
        String[] tokens = new String[vocabSize];
        for (var e : model.path("vocab").properties()) {
            place(file, tokens, e.getValue(), e.getKey(), vocabSize);
        }
        Map<Integer, Boolean> added = new HashMap<>();
        for (JsonNode t : root.path("added_tokens")) {
            int id = place(file, tokens, t.path("id"), t.path("content").asText(), vocabSize);
            added.put(id, t.path("special").asBoolean(false));
        }
        List<String> merges = merges(file, model.path("merges"));
        String unk = model.path("unk_token").isTextual() ? model.path("unk_token").asText() : null;
        String layout = root.path("pre_tokenizer") + " " + root.path("decoder") + " " + root.path("normalizer");
        boolean byteLevel = layout.contains("\"ByteLevel\"");
        boolean metaspace = !byteLevel && (layout.contains("\"Metaspace\"") || layout.contains(SPIECE_SPACE));
        if (!byteLevel && !metaspace) {
            throw new BadInputException(file + ": the tokenizer is neither byte-level BPE nor metaspace BPE, which"
                    + " are the two that GGUF's gpt2 and llama vocabularies describe");
        }
        var list = new ArrayList<String>(vocabSize);
        var types = new ArrayList<Integer>(vocabSize);
        OptionalInt unknownId = OptionalInt.empty();
        for (int id = 0; id < vocabSize; id++) {
            String token = tokens[id];
            int type;
            if (token == null) {
                token = "[PAD" + id + "]";
                type = UNUSED;
            } else if (added.containsKey(id)) {
                type = added.get(id) ? CONTROL : USER_DEFINED;
            } else if (metaspace && BYTE_TOKEN.matcher(token).matches()) {
                type = BYTE;
            } else {
                type = NORMAL;
            }
            if (token.equals(unk)) {
                unknownId = OptionalInt.of(id);
                if (metaspace) {
                    type = UNKNOWN;
                }
            }
            list.add(token);
            types.add(type);
        }
        if (byteLevel) {
            return new GgufVocabulary("gpt2", Optional.of(preTokenizer(root.path("pre_tokenizer"))), list, types,
                    Optional.empty(), Optional.of(merges), Optional.empty(), unknownId);
        }
        return new GgufVocabulary("llama", Optional.empty(), list, types, Optional.of(mergeScores(list, merges)),
                Optional.empty(), Optional.of(addsSpacePrefix(root)), unknownId);
    }

    /** Adds the vocabulary's {@code tokenizer.ggml.*} keys (special token ids are the model's, added apart). */
    public void addTo(GgufMetadata.Builder metadata) {
        metadata.put("tokenizer.ggml.model", GgufValue.string(model));
        pre.ifPresent(p -> metadata.put("tokenizer.ggml.pre", GgufValue.string(p)));
        metadata.put("tokenizer.ggml.tokens", GgufValue.strings(tokens));
        scores.ifPresent(s -> metadata.put("tokenizer.ggml.scores", GgufValue.float32s(s)));
        metadata.put("tokenizer.ggml.token_type", GgufValue.int32s(types.stream().mapToInt(Integer::intValue)
                .toArray()));
        merges.ifPresent(m -> metadata.put("tokenizer.ggml.merges", GgufValue.strings(m)));
        addSpacePrefix.ifPresent(a -> metadata.put("tokenizer.ggml.add_space_prefix", GgufValue.bool(a)));
        unknownId.ifPresent(id -> metadata.put("tokenizer.ggml.unknown_token_id", GgufValue.uint32(id)));
    }

    private static int place(Path file, String[] tokens, JsonNode idNode, String token, int vocabSize) {
        if (!idNode.canConvertToInt() || idNode.asInt() < 0) {
            throw new BadInputException(file + ": token " + BadInputException.quote(token) + " has no valid id: "
                    + BadInputException.quote(idNode.toString()));
        }
        int id = idNode.asInt();
        if (id >= vocabSize) {
            throw new BadInputException(file + ": token " + BadInputException.quote(token) + " has id " + id + " but the model's vocab_size"
                    + " is " + vocabSize + ": the tokenizer does not belong to this model");
        }
        if (tokens[id] != null && !tokens[id].equals(token)) {
            throw new BadInputException(file + ": id " + id + " is given to both " + BadInputException.quote(tokens[id])
                    + " and " + BadInputException.quote(token));
        }
        tokens[id] = token;
        return id;
    }

    /** Merges as "left right", whether tokenizer.json stores them so or as [left, right] pairs. */
    private static List<String> merges(Path file, JsonNode node) {
        var merges = new ArrayList<String>();
        for (JsonNode m : node) {
            if (m.isTextual()) {
                merges.add(m.asText());
            } else if (m.isArray() && m.size() == 2 && m.get(0).isTextual() && m.get(1).isTextual()) {
                merges.add(m.get(0).asText() + " " + m.get(1).asText());
            } else {
                throw new BadInputException(file + ": model.merges: expected \"a b\" or [\"a\", \"b\"], got " + m);
            }
        }
        return merges;
    }

    /** Scores that make llama.cpp's highest-score-first merging follow the BPE merge ranks. */
    private static float[] mergeScores(List<String> tokens, List<String> merges) {
        Map<String, Integer> rank = new HashMap<>();
        for (int r = 0; r < merges.size(); r++) {
            String m = merges.get(r);
            int space = m.indexOf(' ', 1);
            if (space > 0) {
                rank.putIfAbsent(m.substring(0, space) + m.substring(space + 1), r);
            }
        }
        float[] scores = new float[tokens.size()];
        for (int id = 0; id < scores.length; id++) {
            String t = tokens.get(id);
            Integer r = rank.get(t);
            // Single characters are where merging starts (score 0); longer tokens no merge makes rank last.
            scores[id] = r != null ? -r : t.codePointCount(0, t.length()) <= 1 ? 0 : -(merges.size() + id);
        }
        return scores;
    }

    private static boolean addsSpacePrefix(JsonNode root) {
        String normalizer = root.path("normalizer").toString();
        JsonNode pre = root.path("pre_tokenizer");
        if (normalizer.contains("\"Prepend\"") && normalizer.contains(SPIECE_SPACE)) {
            return true;
        }
        for (JsonNode p : pre.path("type").asText().equals("Sequence") ? pre.path("pretokenizers")
                : Collections.singletonList(pre)) {
            if (p.path("type").asText().equals("Metaspace")) {
                return p.has("prepend_scheme") ? !p.path("prepend_scheme").asText().equals("never")
                        : p.path("add_prefix_space").asBoolean(true);
            }
        }
        return false;
    }

    /** llama.cpp's name for a byte-level pre-tokenizer it knows by its pattern, else its default. */
    private static String preTokenizer(JsonNode pre) {
        if (pre.toString().contains(Json.mapper().valueToTree(QWEN2_PATTERN).toString())) {
            return "qwen2";
        }
        if (pre.path("type").asText().equals("ByteLevel") && pre.path("use_regex").asBoolean(true)) {
            return "gpt-2";
        }
        return "default";
    }
}
