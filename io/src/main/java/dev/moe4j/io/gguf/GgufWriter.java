package dev.moe4j.io.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.FloatFormats;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.quant.BlockCodec;
import dev.moe4j.io.AtomicFiles;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;

/**
 * Writes GGUF version 3 files (little-endian) as ggml reads them: the header (magic, version, tensor count,
 * metadata count), the metadata, the tensor infos (dimensions innermost first, ggml type, offset into the data
 * section), zero padding to the alignment, then each tensor's data padded to the alignment, the last one included,
 * so that every offset is the sum of the padded sizes before it (ggml refuses any other layout).
 *
 * <p>Tensor data is streamed from its parts through a small buffer, converted to the file's type on the way
 * (decoded to floats, or computed, a chunk at a time and encoded again, quantised by core's block codecs when the
 * file's type is a block type; a stored part already of the file's type is copied as it is), so a model of any size
 * is written without being held in memory. Chunks are converted on {@link Parallel}'s threads, since quantising is
 * what a large file's writing waits for; each chunk lands at its own place in the buffer, so the bytes do not
 * depend on the thread count. The file is written under a temporary name beside the
 * target and moved into place when complete; a failure leaves nothing behind.
 */
public final class GgufWriter {
    /** The version this writer produces. */
    public static final int VERSION = 3;
    static final byte[] MAGIC = {'G', 'G', 'U', 'F'};
    private static final int STAGING_BYTES = 4 << 20;
    /** Elements converted at a time: whole blocks of every block type (256 is the largest), 256 KiB as F32. */
    private static final int CHUNK_ELEMENTS = 1 << 16;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private GgufWriter() {
    }

    /**
     * Writes {@code tensors} (in this order) and {@code metadata} to {@code target}.
     *
     * @throws IllegalArgumentException when two tensors share a name (the caller's mistake, not the user's)
     * @throws BadInputException when the file cannot be written
     */
    public static void write(Path target, GgufMetadata metadata, List<GgufTensor> tensors) {
        var names = new HashSet<String>();
        for (GgufTensor t : tensors) {
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("two tensors are named '" + t.name() + "'");
            }
        }
        int alignment = metadata.alignment();
        byte[] header = header(metadata, tensors, alignment);
        Path temp = AtomicFiles.temporaryBeside(target);
        try {
            try (FileChannel out = FileChannel.open(temp, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                var sink = new DataSink(out);
                sink.bytes(header);
                sink.pad(alignment);
                for (GgufTensor t : tensors) {
                    for (GgufPart part : t.parts()) {
                        sink.part(part, t.type().dtype());
                    }
                    sink.pad(alignment);
                }
                sink.flush();
                out.force(true);
            }
        } catch (IOException e) {
            AtomicFiles.deleteQuietly(temp);
            throw new BadInputException(target + ": cannot write: " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            AtomicFiles.deleteQuietly(temp);
            throw e;
        }
        AtomicFiles.commit(temp, target);
    }

    /** Everything before the data section: header, metadata and tensor infos, whose offsets it computes. */
    static byte[] header(GgufMetadata metadata, List<GgufTensor> tensors, int alignment) {
        var out = new LittleEndianBytes();
        out.bytes(MAGIC);
        out.u32(VERSION);
        out.u64(tensors.size());
        out.u64(metadata.size());
        for (var e : metadata.entries().entrySet()) {
            out.string(e.getKey());
            GgufValue v = e.getValue();
            out.u32(v.type().id());
            if (v.type() == GgufValueType.ARRAY) {
                out.u32(v.elementType().id());
                out.u64(v.elements().size());
                for (Object element : v.elements()) {
                    out.scalar(v.elementType(), element);
                }
            } else {
                out.scalar(v.type(), v.value());
            }
        }
        long offset = 0;
        for (GgufTensor t : tensors) {
            out.string(t.name());
            long[] dims = t.ggufDims();
            out.u32(dims.length);
            for (long d : dims) {
                out.u64(d);
            }
            out.u32(t.type().id());
            out.u64(offset);
            offset = padded(offset + t.byteSize(), alignment);
        }
        return out.toArray();
    }

    static long padded(long n, int alignment) {
        return (n + alignment - 1) / alignment * alignment;
    }

    /** The file's bytes as they are produced, through one staging buffer. */
    private static final class DataSink {
        /** Each thread's floats of one chunk, kept: a converter hands over parts as small as one row. */
        private static final ThreadLocal<float[]> CHUNK = ThreadLocal.withInitial(() -> new float[CHUNK_ELEMENTS]);
        private final EncodedTiles tiles = new EncodedTiles();
        private final FileChannel out;
        private final ByteBuffer staging = ByteBuffer.allocateDirect(STAGING_BYTES);
        private final MemorySegment stage = MemorySegment.ofBuffer(staging);
        private int filled;
        private long written;

        DataSink(FileChannel out) {
            this.out = out;
        }

        void bytes(byte[] data) throws IOException {
            copy(MemorySegment.ofArray(data), 0, data.length);
        }

        void part(GgufPart part, DType to) throws IOException {
            if (part instanceof GgufPart.Stored(Tensor t) && t.dtype() == to) {
                copy(t.segment(), 0, t.segment().byteSize());
                return;
            }
            if (part instanceof GgufPart.Computed(GgufPart.Tiled tiled, long start, long size)
                    && to.isBlockQuantized() && start % GgufPart.Tiled.TILE == 0 && size % GgufPart.Tiled.TILE == 0) {
                MemorySegment encoded = tiles.encoded(tiled, to);
                long tileBytes = to.byteCount(GgufPart.Tiled.TILE);
                for (long at = start; at < start + size; at += GgufPart.Tiled.TILE) {
                    copy(encoded, tiled.tileAt(at) * tileBytes, tileBytes);
                }
                return;
            }
            long chunks = (part.size() + CHUNK_ELEMENTS - 1) / CHUNK_ELEMENTS;
            // parts and rows are whole blocks of both types and a chunk is whole blocks of any, so no block is cut
            int perBatch = (int) Math.max(1, STAGING_BYTES / to.byteCount(CHUNK_ELEMENTS));
            for (long first = 0; first < chunks; first += perBatch) {
                int batch = (int) Math.min(perBatch, chunks - first);
                long begin = first * CHUNK_ELEMENTS;
                long end = Math.min(part.size(), (first + batch) * CHUNK_ELEMENTS);
                long bytes = to.byteCount(end - begin);
                if (filled + bytes > STAGING_BYTES) {
                    flush();
                }
                long base = filled;
                Parallel.forEach(batch, (from, until) -> {
                    float[] chunk = CHUNK.get();
                    for (int c = from; c < until; c++) {
                        long start = begin + (long) c * CHUNK_ELEMENTS;
                        int n = (int) Math.min(CHUNK_ELEMENTS, end - start);
                        read(part, start, chunk, n);
                        encode(chunk, n, to, base + to.byteCount(start - begin));
                    }
                });
                filled += (int) bytes;
            }
        }

        /** Elements {@code start ..} of {@code part} as floats into {@code chunk}. */
        private static void read(GgufPart part, long start, float[] chunk, int n) {
            switch (part) {
                case GgufPart.Computed c -> c.values().fill(c.start() + start, chunk, n);
                case GgufPart.Stored(Tensor t) -> {
                    DType from = t.dtype();
                    MemorySegment data = t.segment();
                    if (from.isBlockQuantized()) {
                        BlockCodec.of(from).dequantize(data, from.byteCount(start), chunk, 0, n / from.blockElements());
                    } else if (from == DType.F32) {
                        MemorySegment.copy(data, F32, 4 * start, chunk, 0, n);
                    } else {
                        for (int i = 0; i < n; i++) {
                            chunk[i] = t.getFloat(start + i);
                        }
                    }
                }
            }
        }

        /** The first {@code n} floats of {@code chunk} as {@code to} into the staging buffer at byte {@code at}. */
        private void encode(float[] chunk, int n, DType to, long at) {
            if (to.isBlockQuantized()) {
                BlockCodec.of(to).quantize(chunk, 0, stage, at, n / to.blockElements());
                return;
            }
            for (int i = 0; i < n; i++) {
                switch (to) {
                    case F32 -> stage.set(F32, at + 4L * i, chunk[i]);
                    case BF16 -> stage.set(I16, at + 2L * i, FloatFormats.floatToBf16(chunk[i]));
                    case F16 -> stage.set(I16, at + 2L * i, FloatFormats.floatToF16(chunk[i]));
                    default -> throw new IllegalStateException(to + " is not a GGUF float type");
                }
            }
        }

        void pad(int alignment) throws IOException {
            long total = written + filled;
            int padding = (int) (padded(total, alignment) - total);
            copy(MemorySegment.ofArray(new byte[padding]), 0, padding);
        }

        private void copy(MemorySegment data, long from, long length) throws IOException {
            long at = from;
            long end = from + length;
            while (at < end) {
                if (filled == STAGING_BYTES) {
                    flush();
                }
                int n = (int) Math.min(STAGING_BYTES - filled, end - at);
                MemorySegment.copy(data, at, stage, filled, n);
                filled += n;
                at += n;
            }
        }

        void flush() throws IOException {
            staging.clear().limit(filled);
            while (staging.hasRemaining()) {
                out.write(staging);
            }
            written += filled;
            filled = 0;
        }
    }

    /** Each tile set's tiles encoded once per block type, for the tensors of one file. */
    private static final class EncodedTiles {
        private record Key(Object tileSet, DType type) {
        }

        private final Map<Key, MemorySegment> encoded = new HashMap<>();

        MemorySegment encoded(GgufPart.Tiled tiled, DType type) {
            return encoded.computeIfAbsent(new Key(tiled.tileSet(), type), k -> encode(tiled, type));
        }

        private static MemorySegment encode(GgufPart.Tiled tiled, DType type) {
            int tile = GgufPart.Tiled.TILE;
            long tileBytes = type.byteCount(tile);
            MemorySegment all = MemorySegment.ofArray(new byte[Math.toIntExact(tiled.tiles() * tileBytes)]);
            Parallel.forRange(tiled.tiles(), 64, (from, to) -> {
                float[] values = new float[tile];
                for (int t = from; t < to; t++) {
                    tiled.fillTile(t, values);
                    BlockCodec.of(type).quantize(values, 0, all, t * tileBytes, tile / type.blockElements());
                }
            });
            return all;
        }
    }

    /** A growing little-endian byte buffer for the header, which is small next to the tensor data. */
    private static final class LittleEndianBytes {
        private byte[] data = new byte[1 << 16];
        private int size;

        void bytes(byte[] b) {
            ensure(b.length);
            System.arraycopy(b, 0, data, size, b.length);
            size += b.length;
        }

        void u8(long v) {
            ensure(1);
            data[size++] = (byte) v;
        }

        void u16(long v) {
            u8(v);
            u8(v >>> 8);
        }

        void u32(long v) {
            u16(v);
            u16(v >>> 16);
        }

        void u64(long v) {
            u32(v);
            u32(v >>> 32);
        }

        void string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            u64(b.length);
            bytes(b);
        }

        void scalar(GgufValueType type, Object v) {
            switch (type) {
                case UINT8, INT8 -> u8((Long) v);
                case UINT16, INT16 -> u16((Long) v);
                case UINT32, INT32 -> u32((Long) v);
                case UINT64, INT64 -> u64((Long) v);
                case FLOAT32 -> u32(Float.floatToRawIntBits((Float) v));
                case FLOAT64 -> u64(Double.doubleToRawLongBits((Double) v));
                case BOOL -> u8((Boolean) v ? 1 : 0);
                case STRING -> string((String) v);
                case ARRAY -> throw new IllegalArgumentException("arrays of arrays are not supported");
            }
        }

        private void ensure(int more) {
            if (size + more > data.length) {
                long grown = Math.max((long) size + more, 2L * data.length);
                if (grown > Integer.MAX_VALUE - 8) {
                    throw new IllegalArgumentException("GGUF metadata and tensor infos over 2 GB");
                }
                data = Arrays.copyOf(data, (int) grown);
            }
        }

        byte[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }
}
