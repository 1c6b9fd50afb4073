package dev.moe4j.io.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/** Reads tokenizer.json into a {@link Tokenizer}; every mistake becomes a one-line BadInputException. */
final class TokenizerJson {
    private final Path file;

    private TokenizerJson(Path file) {
        this.file = file;
    }

    static Tokenizer read(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (NoSuchFileException e) {
            throw new BadInputException(file + ": no such file (expected a tokenizer.json)");
        } catch (JsonProcessingException e) {
            throw new BadInputException(file + ": not valid JSON (" + Json.describe(e) + ")");
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + e.getMessage() + ")");
        }
        if (root == null || !root.isObject()) throw new BadInputException(file + ": expected a JSON object");
        return new TokenizerJson(file).build(root);
    }

    private Tokenizer build(JsonNode root) {
        JsonNode modelNode = root.get("model");
        if (modelNode == null || modelNode.isNull()) throw bad("model", "missing (expected a BPE model)");
        String type = modelNode.path("type").asText("BPE");
        if (!type.equals("BPE")) {
            throw bad("model.type", type + " is not supported (moe4j reads BPE models only)");
        }
        Normalizer normalizer = optional(root.get("normalizer"), "normalizer", this::normalizer);
        PreTokenizer preTokenizer = optional(root.get("pre_tokenizer"), "pre_tokenizer", this::preTokenizer);
        BpeModel model = model(modelNode);
        AddedVocabulary added = new AddedVocabulary(addedTokens(root.get("added_tokens")), normalizer);
        PostProcessor post = optional(root.get("post_processor"), "post_processor", (n, f) -> postProcessor(n, f, added, model));
        Decoder decoder = optional(root.get("decoder"), "decoder", this::decoder);
        return new Tokenizer(file, normalizer, preTokenizer, model, added, post, decoder);
    }

    private interface Reader<T> {
        T read(JsonNode node, String field);
    }

    private <T> T optional(JsonNode node, String field, Reader<T> reader) {
        return node == null || node.isNull() ? null : reader.read(node, field);
    }

    private BadInputException bad(String field, String what) {
        return new BadInputException(file + ": " + field + ": " + what);
    }

    private String type(JsonNode node, String field) {
        if (!node.isObject()) throw bad(field, "expected an object");
        JsonNode t = node.get("type");
        if (t == null || !t.isTextual()) throw bad(field + ".type", "missing");
        return t.asText();
    }

    private String text(JsonNode node, String name, String field) {
        JsonNode v = node.get(name);
        if (v == null || !v.isTextual()) throw bad(field + "." + name, "missing (expected a string)");
        return v.asText();
    }

    private char singleChar(JsonNode node, String name, String field) {
        String s = text(node, name, field);
        if (s.length() != 1) throw bad(field + "." + name, "expected one character, got '" + s + "'");
        return s.charAt(0);
    }

    // --- model -------------------------------------------------------------------------------------------

    private BpeModel model(JsonNode m) {
        JsonNode vocabNode = m.get("vocab");
        if (vocabNode == null || !vocabNode.isObject()) throw bad("model.vocab", "missing (expected an object of token to id)");
        var vocab = new HashMap<String, Integer>(vocabNode.size() * 2);
        var it = vocabNode.fields();
        while (it.hasNext()) {
            var e = it.next();
            if (!e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                throw bad("model.vocab", "id of " + e.getKey() + " is not a non-negative integer");
            }
            vocab.put(e.getKey(), e.getValue().asInt());
        }
        var merges = new ArrayList<String[]>();
        JsonNode mergesNode = m.get("merges");
        if (mergesNode != null && !mergesNode.isNull()) {
            if (!mergesNode.isArray()) throw bad("model.merges", "expected an array");
            for (int i = 0; i < mergesNode.size(); i++) {
                JsonNode e = mergesNode.get(i);
                if (e.isTextual()) {
                    String[] parts = e.asText().split(" ", -1);
                    if (parts.length != 2) throw bad("model.merges[" + i + "]", "expected \"a b\", got \"" + e.asText() + "\"");
                    merges.add(parts);
                } else if (e.isArray() && e.size() == 2 && e.get(0).isTextual() && e.get(1).isTextual()) {
                    merges.add(new String[] {e.get(0).asText(), e.get(1).asText()});
                } else {
                    throw bad("model.merges[" + i + "]", "expected \"a b\" or [\"a\", \"b\"]");
                }
            }
        }
        try {
            return new BpeModel(vocab, merges, textOrNull(m, "unk_token"), textOrNull(m, "continuing_subword_prefix"),
                    textOrNull(m, "end_of_word_suffix"), m.path("fuse_unk").asBoolean(false),
                    m.path("byte_fallback").asBoolean(false), m.path("ignore_merges").asBoolean(false));
        } catch (IllegalArgumentException e) {
            throw bad("model", e.getMessage());
        }
    }

    private static String textOrNull(JsonNode node, String name) {
        JsonNode v = node.get(name);
        return v == null || v.isNull() ? null : v.asText();
    }

    private List<AddedVocabulary.AddedToken> addedTokens(JsonNode node) {
        var out = new ArrayList<AddedVocabulary.AddedToken>();
        if (node == null || node.isNull()) return out;
        if (!node.isArray()) throw bad("added_tokens", "expected an array");
        for (int i = 0; i < node.size(); i++) {
            JsonNode t = node.get(i);
            String field = "added_tokens[" + i + "]";
            if (!t.path("id").canConvertToInt()) throw bad(field + ".id", "missing (expected an integer)");
            boolean special = t.path("special").asBoolean(false);
            out.add(new AddedVocabulary.AddedToken(t.get("id").asInt(), text(t, "content", field),
                    t.path("single_word").asBoolean(false), t.path("lstrip").asBoolean(false),
                    t.path("rstrip").asBoolean(false), t.path("normalized").asBoolean(!special), special));
        }
        return out;
    }

    // --- normalizers -------------------------------------------------------------------------------------

    private Normalizer normalizer(JsonNode n, String field) {
        String type = type(n, field);
        return switch (type) {
            case "Sequence" -> new Normalizer.Sequence(list(n, "normalizers", field, this::normalizer));
            case "NFC" -> new Normalizer.Unicode(java.text.Normalizer.Form.NFC);
            case "NFD" -> new Normalizer.Unicode(java.text.Normalizer.Form.NFD);
            case "NFKC" -> new Normalizer.Unicode(java.text.Normalizer.Form.NFKC);
            case "NFKD" -> new Normalizer.Unicode(java.text.Normalizer.Form.NFKD);
            case "Lowercase" -> new Normalizer.Lowercase();
            case "Strip" -> new Normalizer.Strip(n.path("strip_left").asBoolean(true), n.path("strip_right").asBoolean(true));
            case "Replace" -> replace(n, field);
            case "Prepend" -> new Normalizer.Prepend(text(n, "prepend", field));
            default -> throw bad(field + ".type", "unknown normalizer " + type);
        };
    }

    private Normalizer.Replace replace(JsonNode n, String field) {
        JsonNode pattern = n.get("pattern");
        String content = text(n, "content", field);
        if (pattern != null && pattern.has("String")) {
            return new Normalizer.Replace(Pattern.compile(Pattern.quote(pattern.get("String").asText())), content, true);
        }
        if (pattern != null && pattern.has("Regex")) {
            return new Normalizer.Replace(regex(pattern.get("Regex").asText(), field + ".pattern.Regex"), content, false);
        }
        throw bad(field + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
    }

    private Pattern regex(String onig, String field) {
        try {
            return OnigRegex.compile(onig);
        } catch (PatternSyntaxException e) {
            throw bad(field, "cannot use the regular expression " + onig + " (" + e.getDescription() + ")");
        }
    }

    private <T> List<T> list(JsonNode n, String name, String field, Reader<T> reader) {
        JsonNode arr = n.get(name);
        if (arr == null || !arr.isArray()) throw bad(field + "." + name, "missing (expected an array)");
        var out = new ArrayList<T>();
        for (int i = 0; i < arr.size(); i++) out.add(reader.read(arr.get(i), field + "." + name + "[" + i + "]"));
        return out;
    }

    // --- pre-tokenizers ----------------------------------------------------------------------------------

    private PreTokenizer preTokenizer(JsonNode n, String field) {
        String type = type(n, field);
        return switch (type) {
            case "Sequence" -> new PreTokenizer.Sequence(list(n, "pretokenizers", field, this::preTokenizer));
            case "ByteLevel" -> new PreTokenizer.ByteLevelSplit(n.path("add_prefix_space").asBoolean(true),
                    n.path("use_regex").asBoolean(true));
            case "Split" -> split(n, field);
            case "Metaspace" -> new PreTokenizer.Metaspace(singleChar(n, "replacement", field), prependScheme(n, field),
                    n.path("split").asBoolean(true));
            case "Digits" -> new PreTokenizer.Digits(n.path("individual_digits").asBoolean(false));
            case "Punctuation" -> new PreTokenizer.Punctuation(behavior(n.path("behavior").asText("Isolated"), field));
            case "Whitespace" -> new PreTokenizer.Whitespace();
            case "WhitespaceSplit" -> new PreTokenizer.WhitespaceSplit();
            default -> throw bad(field + ".type", "unknown pre-tokenizer " + type);
        };
    }

    private PreTokenizer split(JsonNode n, String field) {
        JsonNode pattern = n.get("pattern");
        Pattern p;
        if (pattern != null && pattern.has("String")) {
            p = Pattern.compile(Pattern.quote(pattern.get("String").asText()));
        } else if (pattern != null && pattern.has("Regex")) {
            p = regex(pattern.get("Regex").asText(), field + ".pattern.Regex");
        } else {
            throw bad(field + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
        }
        return new PreTokenizer.Split(p, behavior(text(n, "behavior", field), field), n.path("invert").asBoolean(false));
    }

    private SplitBehavior behavior(String name, String field) {
        SplitBehavior b = SplitBehavior.parse(name);
        if (b == null) throw bad(field + ".behavior", "unknown behaviour " + name);
        return b;
    }

    private PreTokenizer.PrependScheme prependScheme(JsonNode n, String field) {
        JsonNode scheme = n.get("prepend_scheme");
        if (scheme == null || scheme.isNull()) {
            // files written before prepend_scheme existed say add_prefix_space instead
            return n.path("add_prefix_space").asBoolean(true) ? PreTokenizer.PrependScheme.ALWAYS : PreTokenizer.PrependScheme.NEVER;
        }
        return switch (scheme.asText()) {
            case "always" -> PreTokenizer.PrependScheme.ALWAYS;
            case "first" -> PreTokenizer.PrependScheme.FIRST;
            case "never" -> PreTokenizer.PrependScheme.NEVER;
            default -> throw bad(field + ".prepend_scheme", "expected always, first or never, got " + scheme.asText());
        };
    }

    // --- post-processors ---------------------------------------------------------------------------------

    private PostProcessor postProcessor(JsonNode n, String field, AddedVocabulary added, BpeModel model) {
        String type = type(n, field);
        return switch (type) {
            case "Sequence" -> new PostProcessor.Sequence(list(n, "processors", field, (p, f) -> postProcessor(p, f, added, model)));
            case "ByteLevel" -> new PostProcessor.ByteLevelOffsets();
            case "TemplateProcessing" -> template(n, field);
            case "BertProcessing", "RobertaProcessing" -> new PostProcessor.Template(
                    List.of(special(n.get("cls"), field + ".cls")), List.of(special(n.get("sep"), field + ".sep")));
            default -> throw bad(field + ".type", "unknown post-processor " + type);
        };
    }

    private PostProcessor.Special special(JsonNode pair, String field) {
        if (pair == null || !pair.isArray() || pair.size() != 2) throw bad(field, "expected [token, id]");
        return new PostProcessor.Special(pair.get(1).asInt(), pair.get(0).asText());
    }

    private PostProcessor template(JsonNode n, String field) {
        JsonNode single = n.get("single");
        if (single == null || !single.isArray()) throw bad(field + ".single", "missing (expected a template)");
        Map<String, List<PostProcessor.Special>> specials = new HashMap<>();
        JsonNode sp = n.path("special_tokens");
        var it = sp.fields();
        while (it.hasNext()) {
            var e = it.next();
            JsonNode ids = e.getValue().path("ids"), tokens = e.getValue().path("tokens");
            if (!ids.isArray() || !tokens.isArray() || ids.size() != tokens.size()) {
                throw bad(field + ".special_tokens." + e.getKey(), "expected ids and tokens of equal length");
            }
            var list = new ArrayList<PostProcessor.Special>();
            for (int i = 0; i < ids.size(); i++) list.add(new PostProcessor.Special(ids.get(i).asInt(), tokens.get(i).asText()));
            specials.put(e.getKey(), list);
        }
        var before = new ArrayList<PostProcessor.Special>();
        var after = new ArrayList<PostProcessor.Special>();
        boolean seenSequence = false;
        for (int i = 0; i < single.size(); i++) {
            JsonNode piece = single.get(i);
            String f = field + ".single[" + i + "]";
            if (piece.has("Sequence")) {
                seenSequence = true;
            } else if (piece.has("SpecialToken")) {
                String id = piece.get("SpecialToken").path("id").asText();
                List<PostProcessor.Special> s = specials.get(id);
                if (s == null) throw bad(f, "special token " + id + " is not in special_tokens");
                (seenSequence ? after : before).addAll(s);
            } else {
                throw bad(f, "expected Sequence or SpecialToken");
            }
        }
        return new PostProcessor.Template(before, after);
    }

    // --- decoders ----------------------------------------------------------------------------------------

    private Decoder decoder(JsonNode n, String field) {
        String type = type(n, field);
        return switch (type) {
            case "Sequence" -> new Decoder.Sequence(list(n, "decoders", field, this::decoder));
            case "ByteLevel" -> new Decoder.ByteLevelBytes();
            case "Metaspace" -> new Decoder.Metaspace(singleChar(n, "replacement", field), prependScheme(n, field));
            case "ByteFallback" -> new Decoder.ByteFallback();
            case "Fuse" -> new Decoder.Fuse();
            case "Strip" -> new Decoder.Strip(text(n, "content", field).codePointAt(0), n.path("start").asInt(0),
                    n.path("stop").asInt(0));
            case "Replace" -> new Decoder.Replace(replace(n, field));
            default -> throw bad(field + ".type", "unknown decoder " + type);
        };
    }
}
