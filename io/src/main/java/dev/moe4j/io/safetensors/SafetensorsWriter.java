package dev.moe4j.io.safetensors;

import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes safetensors files byte for byte as the reference Python/Rust library does: tensors ordered by descending
 * dtype (in {@link dev.moe4j.core.DType} declaration order, which is the reference's alignment order) and then by
 * name, a compact JSON header with {@code __metadata__} first, padded with spaces to a multiple of 8 bytes so the
 * data starts aligned. A file is written to a temporary name beside its target and moved into place only when
 * complete, so a failure never leaves a partial file under the target name.
 */
public final class SafetensorsWriter {
    /**
     * Tensor bytes go out through a staging buffer of this size: heap tensors backed by float[] or short[] cannot
     * be viewed as a ByteBuffer, and a view would be limited to 2 GiB anyway.
     */
    private static final int STAGING_BYTES = 8 << 20;

    private SafetensorsWriter() {
    }

    /** Writes the tensors to {@code path} without metadata. */
    public static void write(Path path, Map<String, Tensor> tensors) {
        write(path, tensors, Map.of());
    }

    /** Writes the tensors and the {@code __metadata__} strings (omitted when empty) to {@code path}. */
    public static void write(Path path, Map<String, Tensor> tensors, Map<String, String> metadata) {
        AtomicFiles.commit(writeTemporary(path, tensors, metadata), path);
    }

    /** The order in which the reference writer lays tensors out: larger dtypes first, then names by code point. */
    static List<Map.Entry<String, Tensor>> layoutOrder(Map<String, Tensor> tensors) {
        var ordered = new ArrayList<>(tensors.entrySet());
        ordered.sort(Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dtype().ordinal())
                .thenComparing(Map.Entry::getKey, SafetensorsWriter::compareCodePoints));
        return ordered;
    }

    /** Rust orders strings by their UTF-8 bytes, which is code point order (not Java's UTF-16 order). */
    private static int compareCodePoints(String a, String b) {
        var i = a.codePoints().iterator();
        var j = b.codePoints().iterator();
        while (i.hasNext() && j.hasNext()) {
            int c = Integer.compare(i.nextInt(), j.nextInt());
            if (c != 0) {
                return c;
            }
        }
        return Boolean.compare(i.hasNext(), j.hasNext());
    }

    /** The 8-byte length and the padded JSON header for tensors in layout order. */
    static byte[] header(List<Map.Entry<String, Tensor>> ordered, Map<String, String> metadata) {
        var json = new ByteArrayOutputStream();
        try (JsonGenerator g = Json.mapper().getFactory().createGenerator(json, JsonEncoding.UTF8)) {
            g.writeStartObject();
            if (!metadata.isEmpty()) {
                g.writeObjectFieldStart(SafetensorsHeader.METADATA_KEY);
                for (var m : new TreeMap<>(metadata).entrySet()) {
                    g.writeStringField(m.getKey(), m.getValue());
                }
                g.writeEndObject();
            }
            long offset = 0;
            for (var e : ordered) {
                if (e.getKey().equals(SafetensorsHeader.METADATA_KEY)) {
                    throw new IllegalArgumentException("'" + SafetensorsHeader.METADATA_KEY
                            + "' is reserved and cannot name a tensor");
                }
                Tensor t = e.getValue();
                if (t.dtype().isBlockQuantized()) {
                    throw new IllegalArgumentException("safetensors has no " + t.dtype() + " type (tensor '"
                            + e.getKey() + "'); block-quantised tensors are written to GGUF");
                }
                g.writeObjectFieldStart(e.getKey());
                g.writeStringField("dtype", t.dtype().name());
                g.writeArrayFieldStart("shape");
                for (int d : t.shape()) {
                    g.writeNumber(d);
                }
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(offset);
                g.writeNumber(offset + t.byteSize());
                g.writeEndArray();
                g.writeEndObject();
                offset += t.byteSize();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int length = json.size();
        int padding = (8 - length % 8) % 8;
        ByteBuffer out = ByteBuffer.allocate(8 + length + padding).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(length + padding).put(json.toByteArray());
        while (out.hasRemaining()) {
            out.put((byte) ' ');
        }
        return out.array();
    }

    /** Writes the file under a temporary name in the target's folder and returns that name. */
    static Path writeTemporary(Path target, Map<String, Tensor> tensors, Map<String, String> metadata) {
        var ordered = layoutOrder(tensors);
        byte[] header = header(ordered, metadata);
        Path temp = AtomicFiles.temporaryBeside(target);
        try {
            try (FileChannel out = FileChannel.open(temp, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                writeAll(out, ByteBuffer.wrap(header));
                long largest = ordered.stream().mapToLong(e -> e.getValue().byteSize()).max().orElse(0);
                int stagingBytes = (int) Math.max(1, Math.min(STAGING_BYTES, largest));
                ByteBuffer staging = ByteBuffer.allocateDirect(stagingBytes);
                MemorySegment stage = MemorySegment.ofBuffer(staging);
                for (var e : ordered) {
                    MemorySegment data = e.getValue().segment();
                    for (long at = 0; at < data.byteSize(); at += stagingBytes) {
                        int n = (int) Math.min(stagingBytes, data.byteSize() - at);
                        MemorySegment.copy(data, at, stage, 0, n);
                        writeAll(out, staging.clear().limit(n));
                    }
                }
                out.force(true);
            }
            return temp;
        } catch (IOException | RuntimeException e) {
            AtomicFiles.deleteQuietly(temp);
            if (e instanceof RuntimeException r) {
                throw r;
            }
            throw new BadInputException(target + ": cannot write: " + e.getMessage(), e);
        }
    }

    private static void writeAll(FileChannel out, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            out.write(buffer);
        }
    }
}
