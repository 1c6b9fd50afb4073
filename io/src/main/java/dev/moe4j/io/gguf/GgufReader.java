package dev.moe4j.io.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * One GGUF file (version 2 or 3, little-endian), memory-mapped. Everything before the tensor data is read and
 * checked when the file is opened: magic, version, counts against the bytes that could hold them, strings
 * (lengths, UTF-8), value and tensor types, duplicate keys and names, the alignment, and that every tensor's data
 * lies inside the file at an aligned offset without overlapping another. A broken file is one
 * {@link BadInputException} naming the file and the field, before any tensor is touched. Tensors of the
 * {@link GgmlType}s (F32, F16, BF16 and the block-quantised Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MXFP4, whose rows must
 * be whole blocks) are views on the mapping, blocks as they are stored; other ggml types are refused by name.
 */
public final class GgufReader implements AutoCloseable {
    private final Path path;
    private final int version;
    private final GgufMetadata metadata;
    private final Map<String, GgufTensorInfo> tensors;
    private final MemorySegment data;
    private final Arena arena;

    private GgufReader(Path path, int version, GgufMetadata metadata, Map<String, GgufTensorInfo> tensors,
                       MemorySegment data, Arena arena) {
        this.path = path;
        this.version = version;
        this.metadata = metadata;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.data = data;
        this.arena = arena;
    }

    /** Opens, checks and maps a GGUF file; closing the reader unmaps it. */
    public static GgufReader open(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            MemorySegment file = size == 0 ? MemorySegment.ofArray(new byte[0])
                    : channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            return parse(path, file, arena);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new BadInputException(path + ": no such file");
        } catch (AccessDeniedException e) {
            arena.close();
            throw new BadInputException(path + ": permission denied");
        } catch (IOException e) {
            arena.close();
            throw new BadInputException(path + ": cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static GgufReader parse(Path path, MemorySegment file, Arena arena) {
        var in = new Cursor(path.toString(), file);
        byte[] magic = in.bytes(4, "magic");
        if (!Arrays.equals(magic, GgufWriter.MAGIC)) {
            throw in.error("not a GGUF file: it starts with " + hex(magic) + ", not \"GGUF\"");
        }
        long version = in.u32("version");
        if (version != 2 && version != 3) {
            if (Long.reverseBytes(version << 32) == 2 || Long.reverseBytes(version << 32) == 3) {
                throw in.error("version: a big-endian GGUF file; moe4j reads little-endian ones");
            }
            throw in.error("version " + version + " is not supported; moe4j reads GGUF versions 2 and 3");
        }
        long tensorCount = in.count("tensor count", 8 + 4 + 8 + 4 + 8);
        long kvCount = in.count("metadata count", 8 + 4 + 1);
        var builder = GgufMetadata.builder();
        for (long i = 0; i < kvCount; i++) {
            String key = in.string("metadata key " + i);
            if (builder.contains(key)) {
                throw in.error("metadata key " + BadInputException.quote(key) + " appears twice");
            }
            GgufValue value = in.value(key);
            GgufMetadata.problem(key, value).ifPresent(p -> {
                throw in.error(p);
            });
            builder.put(key, value);
        }
        GgufMetadata metadata = builder.build();
        int alignment = metadata.alignment();
        var infos = new LinkedHashMap<String, GgufTensorInfo>();
        for (long i = 0; i < tensorCount; i++) {
            GgufTensorInfo info = in.tensorInfo(i, alignment);
            if (infos.putIfAbsent(info.name(), info) != null) {
                throw in.error("tensor name " + BadInputException.quote(info.name()) + " appears twice");
            }
        }
        long dataStart = GgufWriter.padded(in.position(), alignment);
        long dataBytes = file.byteSize() - Math.min(dataStart, file.byteSize());
        var byOffset = new ArrayList<>(infos.values());
        byOffset.sort(Comparator.comparingLong(GgufTensorInfo::offset));
        long end = 0;
        String previous = null;
        for (GgufTensorInfo t : byOffset) {
            if (t.offset() < end) {
                throw in.error("tensor " + BadInputException.quote(t.name()) + " at offset " + t.offset()
                        + " overlaps tensor " + BadInputException.quote(previous) + ", which ends at " + end);
            }
            end = t.offset() + t.byteSize();
            if (end < 0 || end > dataBytes) {
                throw in.error("tensor " + BadInputException.quote(t.name()) + " (" + t.byteSize() + " bytes at offset "
                        + t.offset()
                        + ") ends past the end of the file (the data section holds " + dataBytes + " bytes)");
            }
            previous = t.name();
        }
        MemorySegment data = file.asSlice(Math.min(dataStart, file.byteSize()));
        return new GgufReader(path, (int) version, metadata, infos, data, arena);
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public GgufMetadata metadata() {
        return metadata;
    }

    /** Every tensor's info, in the order of the file's tensor infos. */
    public List<GgufTensorInfo> tensors() {
        return List.copyOf(tensors.values());
    }

    public Optional<GgufTensorInfo> info(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    /** A view of the named tensor on the mapped file (no copy), in its row-major shape. */
    public Tensor tensor(String name) {
        GgufTensorInfo t = info(name).orElseThrow(() -> new BadInputException(path + ": no tensor named "
                + BadInputException.quote(name)));
        return Tensor.wrap(t.type().dtype(), data.asSlice(t.offset(), t.byteSize()), t.shape());
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    private static String hex(byte[] bytes) {
        var s = new StringBuilder();
        for (byte b : bytes) {
            s.append(String.format("%02x", b & 0xFF));
        }
        return "0x" + s;
    }

    /** Reads little-endian fields with bounds checks, naming the field and its offset when the file is short. */
    private static final class Cursor {
        private final String source;
        private final MemorySegment file;
        private long position;

        Cursor(String source, MemorySegment file) {
            this.source = source;
            this.file = file;
        }

        long position() {
            return position;
        }

        BadInputException error(String problem) {
            return new BadInputException(source + ": " + problem);
        }

        private void need(long bytes, String field) {
            if (bytes < 0 || bytes > file.byteSize() - position) {
                throw error("truncated: " + field + " needs " + bytes + " bytes at offset " + position
                        + " but the file has " + (file.byteSize() - position) + " left");
            }
        }

        byte[] bytes(int n, String field) {
            need(n, field);
            byte[] b = new byte[n];
            MemorySegment.copy(file, ValueLayout.JAVA_BYTE, position, b, 0, n);
            position += n;
            return b;
        }

        private long unsigned(int n, String field) {
            need(n, field);
            long v = 0;
            for (int i = n - 1; i >= 0; i--) {
                v = (v << 8) | (file.get(ValueLayout.JAVA_BYTE, position + i) & 0xFF);
            }
            position += n;
            return v;
        }

        long u32(String field) {
            return unsigned(4, field);
        }

        long u64(String field) {
            return unsigned(8, field);
        }

        /** A count of items of at least {@code minimumBytes} each, refused when the rest of the file cannot hold them. */
        long count(String field, long minimumBytes) {
            long n = u64(field);
            long left = file.byteSize() - position;
            if (n < 0 || n > left / minimumBytes) {
                throw error(field + " " + Long.toUnsignedString(n) + " cannot fit in the " + left
                        + " bytes that follow it");
            }
            return n;
        }

        String string(String field) {
            long length = u64(field + " length");
            if (length < 0 || length > Integer.MAX_VALUE - 8) {
                throw error(field + ": string length " + Long.toUnsignedString(length) + " is too large");
            }
            byte[] b = bytes((int) length, field);
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                throw error(field + " is not valid UTF-8");
            }
        }

        GgufValue value(String key) {
            GgufValueType type = type(key);
            if (type != GgufValueType.ARRAY) {
                return new GgufValue(type, null, scalar(type, key));
            }
            GgufValueType elementType = type(key + " (array element type)");
            if (elementType == GgufValueType.ARRAY) {
                throw error("metadata " + BadInputException.quote(key) + ": arrays of arrays are not supported");
            }
            long n = count("metadata " + BadInputException.quote(key) + " array length", elementType.minimumBytes());
            var elements = new ArrayList<Object>((int) Math.min(n, 1 << 20));
            for (long i = 0; i < n; i++) {
                elements.add(scalar(elementType, key + "[" + i + "]"));
            }
            return new GgufValue(type, elementType, elements);
        }

        private GgufValueType type(String field) {
            long id = u32("type of metadata " + BadInputException.quote(field));
            return GgufValueType.byId(id).orElseThrow(() -> error("metadata " + BadInputException.quote(field)
                    + " has unknown value type " + id));
        }

        private Object scalar(GgufValueType type, String field) {
            String f = "metadata " + BadInputException.quote(field);
            return switch (type) {
                case UINT8 -> unsigned(1, f);
                case INT8 -> (long) (byte) unsigned(1, f);
                case UINT16 -> unsigned(2, f);
                case INT16 -> (long) (short) unsigned(2, f);
                case UINT32 -> unsigned(4, f);
                case INT32 -> (long) (int) unsigned(4, f);
                case UINT64, INT64 -> unsigned(8, f);
                case FLOAT32 -> Float.intBitsToFloat((int) unsigned(4, f));
                case FLOAT64 -> Double.longBitsToDouble(unsigned(8, f));
                case BOOL -> {
                    long b = unsigned(1, f);
                    if (b > 1) {
                        throw error(f + ": a bool must be 0 or 1, got " + b);
                    }
                    yield b == 1;
                }
                case STRING -> string(f);
                case ARRAY -> throw error(f + ": arrays of arrays are not supported");
            };
        }

        GgufTensorInfo tensorInfo(long index, int alignment) {
            String name = string("name of tensor " + index);
            String what = "tensor " + BadInputException.quote(name);
            if (name.isEmpty() || name.getBytes(StandardCharsets.UTF_8).length > GgufTensor.MAX_NAME_BYTES) {
                throw error("name of tensor " + index + " must have 1 to " + GgufTensor.MAX_NAME_BYTES
                        + " bytes: " + BadInputException.quote(name));
            }
            long dims = u32(what + " dimension count");
            if (dims < 1 || dims > GgufTensor.MAX_DIMS) {
                throw error(what + " has " + dims + " dimensions; expected 1 to " + GgufTensor.MAX_DIMS);
            }
            int[] shape = new int[(int) dims];
            long elements = 1;
            for (int i = 0; i < dims; i++) {
                long d = u64(what + " dimension " + i);
                if (d < 0 || d > Integer.MAX_VALUE) {
                    throw error(what + " dimension " + i + " is " + Long.toUnsignedString(d)
                            + "; moe4j reads dimensions up to " + Integer.MAX_VALUE);
                }
                shape[(int) dims - 1 - i] = (int) d;
                try {
                    elements = Math.multiplyExact(elements, d);
                } catch (ArithmeticException e) {
                    elements = Long.MAX_VALUE;
                }
            }
            // Eight bytes an element is more than any type needs, so the byte size below cannot overflow.
            if (elements > Long.MAX_VALUE / 8) {
                throw error(what + " has too many elements: " + Arrays.toString(shape));
            }
            long typeId = u32(what + " type");
            GgmlType type = GgmlType.byId(typeId).orElseThrow(() -> error(what + " has ggml type " + typeId + " ("
                    + GgmlType.nameOf(typeId) + "); moe4j reads " + GgmlType.supported()));
            int block = type.dtype().blockElements();
            if (shape[shape.length - 1] % block != 0) {
                throw error(what + " of type " + type + " has rows of " + shape[shape.length - 1]
                        + " elements; expected a multiple of its block size " + block);
            }
            long offset = u64(what + " offset");
            if (offset < 0 || offset % alignment != 0) {
                throw error(what + " offset " + Long.toUnsignedString(offset) + " is not a multiple of the alignment "
                        + alignment);
            }
            return new GgufTensorInfo(name, type, shape, offset);
        }
    }
}
