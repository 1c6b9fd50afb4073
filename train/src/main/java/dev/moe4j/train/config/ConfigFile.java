package dev.moe4j.train.config;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.moe4j.core.BadInputException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A {@code moe4j train} config file: a JSON or YAML object (by the file's extension; YAML is a superset of JSON)
 * whose keys are the options' names, e.g. {@code top-k: 2}. A list value (e.g. several data paths) is joined with
 * commas. A key that is not an option is a one-line error naming the file and the key.
 */
public final class ConfigFile {
    private ConfigFile() {
    }

    public static Map<String, String> read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new BadInputException(file + ": no such config file");
        }
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        ObjectMapper mapper = name.endsWith(".json") ? new ObjectMapper() : new ObjectMapper(new YAMLFactory());
        JsonNode root;
        try {
            root = mapper.readTree(Files.readAllBytes(file));
        } catch (JsonProcessingException e) {
            throw new BadInputException(file + ": not valid " + (name.endsWith(".json") ? "JSON" : "YAML") + " (line "
                    + e.getLocation().getLineNr() + ": " + BadInputException.oneLine(e.getOriginalMessage()) + ")");
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + e.getMessage() + ")");
        }
        if (root == null || root.isMissingNode() || root.isNull()) {
            return Map.of();
        }
        if (!(root instanceof ObjectNode object)) {
            throw new BadInputException(file + ": expected an object of option: value pairs");
        }
        var out = new LinkedHashMap<String, String>();
        for (var e : object.properties()) {
            String key = e.getKey();
            if (TrainSettings.find(key).isEmpty() || key.equals("config")) {
                throw new BadInputException(file + ": unknown key " + BadInputException.quote(key)
                        + " (moe4j train --help lists the options)");
            }
            out.put(key, text(file, key, e.getValue()));
        }
        return out;
    }

    private static String text(Path file, String key, JsonNode value) {
        if (value.isArray()) {
            var parts = new ArrayList<String>();
            for (JsonNode item : value) {
                if (!item.isValueNode()) {
                    throw new BadInputException(file + ": " + BadInputException.quote(key) + " must be a value or a list of values");
                }
                parts.add(item.asText());
            }
            return String.join(",", parts);
        }
        if (value.isNull()) {
            return "";
        }
        if (!value.isValueNode()) {
            throw new BadInputException(file + ": " + BadInputException.quote(key) + " must be a value, not an object");
        }
        return value.asText();
    }
}
