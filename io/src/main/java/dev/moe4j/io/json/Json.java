package dev.moe4j.io.json;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Reads the JSON files moe4j is given (checkpoint headers and indexes, config.json) strictly: duplicate keys and
 * anything after the top-level value are errors, as in the Rust JSON parser the safetensors reference uses. Every
 * failure is a one-line {@link BadInputException} naming the source.
 */
public final class Json {
    /** The most characters of the bad input an error message quotes: enough to recognise, never a whole header. */
    private static final int QUOTED_AT_MOST = 40;

    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .defaultPrettyPrinter(pythonStyle())
            .build();

    /** Indents as Python's {@code json.dumps(indent=2)}, which writes the config.json and index files of the hub. */
    private static DefaultPrettyPrinter pythonStyle() {
        var indenter = new DefaultIndenter("  ", "\n");
        var separators = Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER)
                .withObjectEmptySeparator("")
                .withArrayEmptySeparator("");
        return new DefaultPrettyPrinter(separators).withObjectIndenter(indenter).withArrayIndenter(indenter);
    }

    private Json() {
    }

    /** The shared mapper: strict reading, indented writing. */
    public static ObjectMapper mapper() {
        return MAPPER;
    }

    /** Reads and parses a JSON file. */
    public static JsonNode read(Path path) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            throw new BadInputException(path + ": no such file");
        } catch (AccessDeniedException e) {
            throw new BadInputException(path + ": permission denied");
        } catch (IOException e) {
            throw new BadInputException(path + ": cannot read: " + e.getMessage(), e);
        }
        return parse(bytes, path.toString());
    }

    /** Parses JSON text; {@code source} names it in error messages. */
    public static JsonNode parse(byte[] utf8, String source) {
        try {
            JsonNode node = MAPPER.readTree(utf8);
            if (node == null || node.isMissingNode()) {
                throw new BadInputException(source + ": empty, expected JSON");
            }
            return node;
        } catch (JsonProcessingException e) {
            throw new BadInputException(source + ": not valid JSON: " + describe(e), e);
        } catch (IOException e) {
            throw new BadInputException(source + ": cannot parse JSON: " + BadInputException.oneLine(e.getMessage()), e);
        }
    }

    /** Indented JSON text in the style of Python's json.dumps(indent=2). */
    public static String pretty(JsonNode node) {
        try {
            return MAPPER.writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree could not be written", e);
        }
    }

    /** JSON text on one line, for output that scripts read. */
    public static String compact(JsonNode node) {
        try {
            return MAPPER.writer().without(SerializationFeature.INDENT_OUTPUT).writeValueAsString(node);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree could not be written", e);
        }
    }

    /** Parses JSON text held in a string. */
    public static JsonNode parse(String text, String source) {
        return parse(text.getBytes(StandardCharsets.UTF_8), source);
    }

    /**
     * What is wrong with some JSON, in one line for a person: Jackson's message without the names of its own
     * features and limits, any character that cannot be shown escaped, and where it is.
     */
    public static String describe(JsonProcessingException e) {
        String what = BadInputException.oneLine(plain(e.getOriginalMessage()));
        JsonLocation at = e.getLocation();
        if (at != null && at.getLineNr() > 0) {
            what += " at line " + at.getLineNr() + ", column " + at.getColumnNr();
        }
        return what;
    }

    /**
     * Jackson's message for a person: its hints name its own switches (`JsonReadFeature.X`), said instead in JSON's
     * terms or left out, and an unrecognised token it quotes is cut to {@link #QUOTED_AT_MOST} characters.
     */
    private static String plain(String message) {
        if (message == null) {
            return null;
        }
        return escapeUnprintable(message
                .replaceAll("^(Unrecognized token '.{" + QUOTED_AT_MOST + "}).+(': was expecting)", "$1...$2")
                .replaceAll(": enable `JsonReadFeature\\.ALLOW_NON_NUMERIC_NUMBERS` to allow",
                        " (JSON has no NaN or Infinity)")
                .replaceAll(" \\(not recognized as one since Feature '[A-Z_]+' not enabled for parser\\)",
                        " (JSON has no comments)")
                .replaceAll("\\[Source: [^;]*; line: (\\d+), column: (\\d+)]", "line $1, column $2")
                .replaceAll(", from `StreamReadConstraints\\.[A-Za-z]+\\(\\)`", "")
                .replaceAll(" \\(bound as `[^`]*`\\)", "")
                .replaceAll(": not allowed as per `DeserializationFeature\\.FAIL_ON_TRAILING_TOKENS`", ""));
    }

    /**
     * Control, format and unassigned characters, lone surrogates and the replacement character written as Java
     * escapes (a backslash, u, four hex digits): quoted garbage stays one readable line.
     */
    private static String escapeUnprintable(String text) {
        var out = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            boolean pair = Character.isHighSurrogate(c) && i + 1 < text.length()
                    && Character.isLowSurrogate(text.charAt(i + 1));
            if (pair) {
                out.append(c).append(text.charAt(++i));
                continue;
            }
            int type = Character.getType(c);
            if (Character.isISOControl(c) || c == '\uFFFD' || type == Character.FORMAT || type == Character.SURROGATE
                    || type == Character.UNASSIGNED || type == Character.PRIVATE_USE
                    || type == Character.LINE_SEPARATOR || type == Character.PARAGRAPH_SEPARATOR) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

}
