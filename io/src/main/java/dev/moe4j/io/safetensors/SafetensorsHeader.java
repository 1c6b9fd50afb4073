package dev.moe4j.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.io.json.Json;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The parsed and validated JSON header of a safetensors file.
 *
 * <p>A file is {@code [u64 little-endian N][N bytes of JSON][data]}. The header maps each tensor name to its
 * dtype, shape and {@code data_offsets} in the data section; the optional {@code __metadata__} entry maps strings
 * to strings. {@link #parse} accepts a header only if every tensor is well formed and the tensors tile the data
 * section exactly (no overlap, no gap, nothing left over), which is what the reference implementation requires,
 * so no later read of a tensor can fall outside the file or alias another tensor.
 */
public final class SafetensorsHeader {
    /** The reference implementation refuses headers above 100 MB; so does moe4j, before allocating them. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    private final Map<String, String> metadata;
    private final List<TensorEntry> entries;
    private final Map<String, TensorEntry> byName;

    private SafetensorsHeader(Map<String, String> metadata, List<TensorEntry> entries) {
        this.metadata = Collections.unmodifiableMap(metadata);
        this.entries = List.copyOf(entries);
        var map = new LinkedHashMap<String, TensorEntry>();
        for (TensorEntry e : this.entries) {
            map.put(e.name(), e);
        }
        this.byName = Collections.unmodifiableMap(map);
    }

    /** The {@code __metadata__} entry, in file order; empty when the file has none. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Every tensor, in the order its bytes appear in the data section. */
    public List<TensorEntry> entries() {
        return entries;
    }

    /** Tensors by name, in data order. */
    public Map<String, TensorEntry> byName() {
        return byName;
    }

    /**
     * Checks the 8-byte length prefix against the file size and returns the header length.
     *
     * @param source names the file in error messages
     */
    public static long checkLength(String source, long declared, long fileSize) {
        if (declared < 0 || declared > MAX_HEADER_BYTES) {
            throw new BadInputException(source + ": header length " + Long.toUnsignedString(declared)
                    + " exceeds the " + MAX_HEADER_BYTES / 1_000_000 + " MB limit (is this a safetensors file?)");
        }
        if (8 + declared > fileSize) {
            throw new BadInputException(source + ": header length " + declared + " runs past the end of the file ("
                    + fileSize + " bytes)");
        }
        return declared;
    }

    /**
     * Parses and validates a header.
     *
     * @param source     names the file in error messages
     * @param json       the N header bytes (UTF-8 JSON, possibly padded with spaces)
     * @param dataLength bytes in the data section that follows the header
     */
    public static SafetensorsHeader parse(String source, byte[] json, long dataLength) {
        JsonNode root = Json.parse(json, source + ": header");
        if (!root.isObject()) {
            throw new BadInputException(source + ": header is a JSON " + root.getNodeType().name().toLowerCase()
                    + ", expected an object of tensors");
        }
        var metadata = new LinkedHashMap<String, String>();
        var entries = new ArrayList<TensorEntry>();
        for (var field : root.properties()) {
            String name = field.getKey();
            JsonNode value = field.getValue();
            if (name.equals(METADATA_KEY)) {
                readMetadata(source, value, metadata);
            } else {
                entries.add(readEntry(source, name, value, dataLength));
            }
        }
        entries.sort(Comparator.comparingLong(TensorEntry::begin).thenComparingLong(TensorEntry::end));
        checkTiling(source, entries, dataLength);
        return new SafetensorsHeader(metadata, entries);
    }

    private static void readMetadata(String source, JsonNode value, Map<String, String> into) {
        if (value.isNull()) {
            return;
        }
        if (!value.isObject()) {
            throw new BadInputException(source + ": __metadata__ must be an object of strings, got a "
                    + value.getNodeType().name().toLowerCase());
        }
        for (var field : value.properties()) {
            if (!field.getValue().isTextual()) {
                throw new BadInputException(source + ": __metadata__ value " + BadInputException.quote(field.getKey())
                        + " must be a string, got a " + field.getValue().getNodeType().name().toLowerCase());
            }
            into.put(field.getKey(), field.getValue().asText());
        }
    }

    private static TensorEntry readEntry(String source, String name, JsonNode value, long dataLength) {
        String where = source + ": tensor " + BadInputException.quote(name);
        if (!value.isObject()) {
            throw new BadInputException(where + " must be an object with dtype, shape and data_offsets");
        }
        JsonNode dtypeNode = value.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new BadInputException(where + " has no dtype string");
        }
        DType dtype = Arrays.stream(DType.values())
                .filter(d -> !d.isBlockQuantized() && d.name().equals(dtypeNode.asText()))
                .findFirst()
                .orElseThrow(() -> new BadInputException(where + " has unknown dtype "
                        + BadInputException.quote(dtypeNode.asText()) + "; expected one of "
                        + Arrays.stream(DType.values()).filter(d -> !d.isBlockQuantized()).map(Enum::name)
                        .collect(Collectors.joining(", "))));

        JsonNode shapeNode = value.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new BadInputException(where + " has no shape array");
        }
        var shape = new ArrayList<Integer>();
        for (JsonNode d : shapeNode) {
            if (!d.isIntegralNumber()) {
                throw new BadInputException(where + " shape " + shapeNode + " must hold integers");
            }
            if (d.canConvertToLong() && d.asLong() < 0 || d.isBigInteger() && d.bigIntegerValue().signum() < 0) {
                throw new BadInputException(where + " shape " + shapeNode + " has a negative dimension");
            }
            if (!d.canConvertToInt()) {
                throw new BadInputException(where + " shape " + shapeNode + " has a dimension above "
                        + Integer.MAX_VALUE);
            }
            shape.add(d.asInt());
        }

        JsonNode offsets = value.get("data_offsets");
        if (offsets == null || !offsets.isArray() || offsets.size() != 2
                || !offsets.get(0).isIntegralNumber() || !offsets.get(1).isIntegralNumber()) {
            throw new BadInputException(where + " data_offsets must be [begin, end], got "
                    + (offsets == null ? "nothing" : offsets.toString()));
        }
        if (!offsets.get(0).canConvertToLong() || !offsets.get(1).canConvertToLong()
                || offsets.get(0).asLong() < 0 || offsets.get(1).asLong() < 0) {
            throw new BadInputException(where + " data_offsets " + offsets + " must be non-negative 64-bit offsets");
        }
        long begin = offsets.get(0).asLong();
        long end = offsets.get(1).asLong();
        String range = "[" + begin + ", " + end + "]";
        if (end < begin) {
            throw new BadInputException(where + " data_offsets " + range + " end before they begin");
        }
        if (end > dataLength) {
            throw new BadInputException(where + " data_offsets " + range + " run past the end of the data ("
                    + dataLength + " bytes)");
        }

        String described = TensorEntry.describe(dtype, shape);
        long needed;
        try {
            long elements = 1;
            for (int d : shape) {
                elements = Math.multiplyExact(elements, d);
            }
            needed = dtype.byteCount(elements);
        } catch (ArithmeticException e) {
            throw new BadInputException(where + " " + described + " is too large to address");
        } catch (IllegalArgumentException e) {
            throw new BadInputException(where + " " + described + " is not a whole number of bytes");
        }
        if (end - begin != needed) {
            throw new BadInputException(where + " data_offsets " + range + " hold " + (end - begin)
                    + " bytes but " + described + " needs " + needed);
        }
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    private static void checkTiling(String source, List<TensorEntry> sorted, long dataLength) {
        long covered = 0;
        TensorEntry previous = null;
        for (TensorEntry e : sorted) {
            if (e.begin() < covered) {
                throw new BadInputException(source + ": tensors " + BadInputException.quote(previous.name()) + " ["
                        + previous.begin() + ", " + previous.end() + "] and " + BadInputException.quote(e.name()) + " ["
                        + e.begin() + ", " + e.end()
                        + "] overlap");
            }
            if (e.begin() > covered) {
                throw new BadInputException(source + ": data bytes [" + covered + ", " + e.begin()
                        + ") belong to no tensor");
            }
            covered = e.end();
            previous = e;
        }
        if (covered != dataLength) {
            throw new BadInputException(source + ": data bytes [" + covered + ", " + dataLength
                    + ") at the end of the file belong to no tensor");
        }
    }
}
