package dev.moe4j.io.tokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Hugging Face {@code tokenizer.json} (BPE model) in Java: encodes text to the ids the reference library
 * produces and decodes ids back to text. The pipeline is the reference's: cut out added tokens, normalise the
 * text between them, pre-tokenise, BPE each piece, then add the model's special tokens. Thread-safe.
 *
 * <p>Not carried over, because inference does not use them: truncation and padding settings (encode never cuts or
 * pads), BPE dropout (encoding is deterministic), sentence pairs in TemplateProcessing, and character offsets.
 */
public final class Tokenizer {
    private final Path source;
    private final Normalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final BpeModel model;
    private final AddedVocabulary added;
    private final PostProcessor postProcessor;
    private final Decoder decoder;
    private final Set<Integer> specialIds;
    private final int vocabSize;

    Tokenizer(Path source, Normalizer normalizer, PreTokenizer preTokenizer, BpeModel model, AddedVocabulary added,
              PostProcessor postProcessor, Decoder decoder) {
        this.source = source;
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        this.model = model;
        this.added = added;
        this.postProcessor = postProcessor;
        this.decoder = decoder;
        var specials = new TreeSet<Integer>();
        for (var t : added.tokens()) {
            if (t.special()) specials.add(t.id());
        }
        this.specialIds = Collections.unmodifiableSet(specials);
        int max = -1;
        for (var id : model.vocab().values()) max = Math.max(max, id);
        for (var t : added.tokens()) max = Math.max(max, t.id());
        this.vocabSize = max + 1;
    }

    /**
     * Reads a tokenizer.json. Throws {@link dev.moe4j.core.BadInputException} naming the file and the field when
     * the file is missing, is not JSON, or holds something moe4j does not support (a model other than BPE, an
     * unknown normalizer, pre-tokenizer, post-processor or decoder type).
     */
    public static Tokenizer load(Path tokenizerJson) {
        return TokenizerJson.read(tokenizerJson);
    }

    /**
     * The tokenizer of a GGUF file's {@code tokenizer.ggml.*} metadata (gpt2 or llama vocabularies), tokenising as
     * llama.cpp does; a missing or inconsistent key is a {@link dev.moe4j.core.BadInputException} naming it.
     */
    public static Tokenizer fromGguf(dev.moe4j.io.gguf.GgufFields metadata) {
        return GgufTokenizer.read(metadata);
    }

    /** The ids (and their token strings) of one text, as the reference's {@code encode(text, add_special_tokens)}. */
    public record Encoding(int[] ids, List<String> tokens) {
    }

    /** Encodes text; with {@code addSpecialTokens} the post-processor's tokens (e.g. BOS) are added. */
    public Encoding encode(String text, boolean addSpecialTokens) {
        var ids = new BpeModel.IntList(text.length() / 3 + 4);
        var tokens = new ArrayList<String>();
        encodeInto(text, addSpecialTokens, ids, tokens);
        return new Encoding(ids.toArray(), List.copyOf(tokens));
    }

    /** The ids of a text, as {@code encode(text, addSpecialTokens).ids()} without building the token strings. */
    public int[] encodeIds(String text, boolean addSpecialTokens) {
        var ids = new BpeModel.IntList(text.length() / 3 + 4);
        encodeInto(text, addSpecialTokens, ids, null);
        return ids.toArray();
    }

    private void encodeInto(String text, boolean addSpecialTokens, BpeModel.IntList ids, List<String> tokens) {
        for (var segment : added.split(text, normalizer)) {
            if (segment.isAdded()) {
                ids.add(segment.addedId());
                if (tokens != null) tokens.add(segment.text());
                continue;
            }
            List<PreTokenizer.Piece> pieces = List.of(new PreTokenizer.Piece(segment.text(), segment.atStart()));
            if (preTokenizer != null) pieces = preTokenizer.apply(pieces);
            for (var piece : pieces) {
                int[] pieceIds;
                try {
                    pieceIds = model.encode(piece.text());
                } catch (IllegalStateException e) { // an unk_token the vocabulary lacks, needed for this text
                    throw new dev.moe4j.core.BadInputException(source + ": model.unk_token: " + e.getMessage());
                }
                ids.addAll(pieceIds);
                if (tokens != null) {
                    for (int id : pieceIds) tokens.add(model.token(id));
                }
            }
        }
        if (addSpecialTokens && postProcessor != null) postProcessor.process(ids, tokens);
    }

    /**
     * The text of a sequence of ids, as the reference's {@code decode(ids, skip_special_tokens)}: ids outside the
     * vocabulary are dropped, special added tokens too when asked.
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        return decode(ids, 0, ids.length, skipSpecialTokens);
    }

    String decode(int[] ids, int from, int to, boolean skipSpecialTokens) {
        var tokens = new ArrayList<String>(to - from);
        for (int i = from; i < to; i++) {
            var addedToken = added.byId(ids[i]);
            String t = addedToken != null ? addedToken.content() : model.token(ids[i]);
            if (t == null) continue;
            if (skipSpecialTokens && isSpecialContent(t)) continue;
            tokens.add(t);
        }
        return decoder != null ? decoder.decode(tokens) : String.join(" ", tokens);
    }

    private boolean isSpecialContent(String token) {
        var t = added.byContent(token);
        return t != null && t.special();
    }

    /**
     * The bytes one id adds in the middle of a text (not at its start, where a decoder may strip a space): a
     * byte-level token's bytes, a {@code <0xNN>} byte, a Metaspace token with its marks as spaces, an added token's
     * content. Constrained decoding matches these against what may come next; null for an id outside the vocabulary.
     */
    public byte[] tokenBytes(int id) {
        var addedToken = added.byId(id);
        if (addedToken != null) return addedToken.content().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        String t = model.token(id);
        if (t == null) return null;
        if (decoder == null) return t.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        return Decoder.midTextBytes(decoder, t);
    }

    /** A decoder that turns ids into text one at a time while a model generates them. */
    public StreamingDecoder streamingDecoder(boolean skipSpecialTokens) {
        return new StreamingDecoder(this, skipSpecialTokens);
    }

    /** How many ids there are: one more than the largest id of the vocabulary and the added tokens. */
    public int vocabSize() {
        return vocabSize;
    }

    /** The id of a token string (an added token or a vocabulary entry). */
    public OptionalInt tokenId(String token) {
        var t = added.byContent(token);
        if (t != null) return OptionalInt.of(t.id());
        Integer id = model.id(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** The token string of an id. */
    public Optional<String> tokenString(int id) {
        var t = added.byId(id);
        if (t != null) return Optional.of(t.content());
        return Optional.ofNullable(model.token(id));
    }

    /** The ids of the added tokens marked special ({@code <s>}, {@code <|im_end|>}, ...). */
    public Set<Integer> specialTokenIds() {
        return specialIds;
    }

    /** Whether an id is a special added token. */
    public boolean isSpecial(int id) {
        return specialIds.contains(id);
    }

    /** The added tokens, by id, with their content. */
    public Map<Integer, String> addedTokens() {
        var m = new LinkedHashMap<Integer, String>();
        for (var t : added.tokens()) m.put(t.id(), t.content());
        return Collections.unmodifiableMap(m);
    }

    /** The file this tokenizer was read from. */
    public Path source() {
        return source;
    }
}
