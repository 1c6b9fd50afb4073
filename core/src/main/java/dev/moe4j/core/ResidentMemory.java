package dev.moe4j.core;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Optional;

/**
 * Host memory that weights are copied into from a memory-mapped checkpoint, so that decoding streams them from
 * anonymous memory rather than from the page cache's mapping of the file.
 *
 * <p>Why: on the project machine (2026-12-07, AMD EPYC under KVM, Linux 6.18) the same decode kernel streamed
 * 2-3x faster from anonymous memory than from a file mapping of the same bytes (see docs/BENCHMARKS.md), and
 * decoding is bound by that stream. On Linux the memory is an anonymous mapping advised as transparent huge pages
 * (fewer TLB misses over gigabytes of weights, and the hardware prefetcher is not stopped at every 4 KiB page
 * boundary); elsewhere it is an ordinary off-heap allocation.
 *
 * <p>Allocation is a bump pointer over chunks of at least {@link #CHUNK} bytes, each chunk aligned to 2 MiB, every
 * tensor to 64 bytes (a cache line and a 512-bit vector). Closing releases every chunk; segments handed out become
 * inaccessible then (an access throws rather than reading freed memory).
 */
public final class ResidentMemory implements AutoCloseable {
    static final long CHUNK = 64L << 20;
    private static final long HUGE_PAGE = 2L << 20;
    private static final long TENSOR_ALIGNMENT = 64;

    private final Arena arena = Arena.ofShared();
    private MemorySegment chunk;
    private long used;
    private long bytes;

    /** Copies {@code t} (a host tensor of any dtype) into this memory: the same shape, dtype and values. */
    public Tensor copyOf(Tensor t) {
        MemorySegment source = t.segment();
        MemorySegment target = allocate(source.byteSize());
        copyInParallel(source, target);
        return Tensor.wrap(t.dtype(), target, t.shape());
    }

    /**
     * Quantises {@code t} (a host matrix of F32, BF16 or F16 whose rows are whole blocks) into this memory as the
     * block type {@code type}, rows in parallel: a model's weights held quantised without a file in between.
     */
    public Tensor quantisedCopyOf(Tensor t, DType type) {
        int cols = t.cols(), rows = t.rows();
        long rowBytes = type.byteCount(cols);
        MemorySegment target = allocate(rowBytes * rows);
        Tensor rowsView = t.reshape(rows, cols);
        var codec = dev.moe4j.core.quant.BlockCodec.of(type);
        Parallel.forRange(rows, Math.max(1, (1 << 16) / cols), (from, to) -> {
            for (int r = from; r < to; r++) {
                codec.quantize(rowsView.select(r).toFloatArray(), 0, target, r * rowBytes, cols / type.blockElements());
            }
        });
        return Tensor.wrap(type, target, t.shape());
    }

    /** Bytes handed out so far. */
    public long bytes() {
        return bytes;
    }

    @Override
    public void close() {
        arena.close();
    }

    private MemorySegment allocate(long size) {
        long start = (used + TENSOR_ALIGNMENT - 1) & -TENSOR_ALIGNMENT;
        if (chunk == null || start + size > chunk.byteSize()) {
            chunk = Native.LINUX ? Native.hugePageChunk(Math.max(CHUNK, size), arena)
                    : arena.allocate(Math.max(CHUNK, size), HUGE_PAGE);
            start = 0;
        }
        used = start + size;
        bytes += size;
        return chunk.asSlice(start, size);
    }

    /** Large tensors are copied by every worker thread: one thread alone does not reach the memory's bandwidth. */
    private static void copyInParallel(MemorySegment source, MemorySegment target) {
        long size = source.byteSize();
        long block = 1L << 20;
        int blocks = (int) ((size + block - 1) / block);
        Parallel.forRange(blocks, 4, (from, to) -> {
            long begin = from * block, end = Math.min(size, to * block);
            MemorySegment.copy(source, begin, target, begin, end - begin);
        });
    }

    /**
     * The memory that may be filled with copies of weights: the kernel's estimate of what can be allocated without
     * swapping (MemAvailable of /proc/meminfo, which counts reclaimable page cache), or empty where that is not known.
     */
    public static Optional<Long> availableBytes() {
        Path meminfo = Path.of("/proc/meminfo");
        if (!Files.isReadable(meminfo)) {
            return Optional.empty();
        }
        try {
            for (String line : Files.readAllLines(meminfo)) {
                if (line.startsWith("MemAvailable:")) {
                    String[] parts = line.substring("MemAvailable:".length()).trim().split("\\s+");
                    return Optional.of(Long.parseLong(parts[0]) * 1024);
                }
            }
        } catch (IOException | NumberFormatException e) {
            return Optional.empty();
        }
        return Optional.empty();
    }

    /** Linux's mmap and madvise, reached through the FFM API. */
    private static final class Native {
        static final boolean LINUX = System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");
        private static final int PROT_READ_WRITE = 0x1 | 0x2;
        private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
        private static final int MADV_HUGEPAGE = 14;
        private static final MethodHandle MMAP;
        private static final MethodHandle MUNMAP;
        private static final MethodHandle MADVISE;

        static {
            Linker linker = Linker.nativeLinker();
            var libc = linker.defaultLookup();
            MMAP = linker.downcallHandle(libc.find("mmap").orElseThrow(), FunctionDescriptor.of(ValueLayout.ADDRESS,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                    ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
            MUNMAP = linker.downcallHandle(libc.find("munmap").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
            MADVISE = linker.downcallHandle(libc.find("madvise").orElseThrow(), FunctionDescriptor.of(
                    ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
        }

        /**
         * A fresh anonymous mapping of at least {@code size} bytes starting on a 2 MiB boundary, advised as huge pages
         * before any page is touched (advice given after the first write finds 4 KiB pages already in place), and
         * unmapped when {@code arena} closes.
         */
        static MemorySegment hugePageChunk(long size, Arena arena) {
            long rounded = (size + HUGE_PAGE - 1) & -HUGE_PAGE;
            long mapped = rounded + HUGE_PAGE;
            try {
                MemorySegment raw = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, mapped, PROT_READ_WRITE,
                        MAP_PRIVATE_ANONYMOUS, -1, 0L);
                if (raw.address() == -1L) {
                    throw new OutOfMemoryError("mmap of " + mapped + " bytes for model weights failed");
                }
                long address = raw.address();
                MemorySegment whole = raw.reinterpret(mapped, arena, s -> unmap(address, mapped));
                long skip = ((address + HUGE_PAGE - 1) & -HUGE_PAGE) - address;
                MemorySegment aligned = whole.asSlice(skip, rounded);
                // Advice only: where transparent huge pages are off the kernel refuses, and 4 KiB pages still work.
                int ignored = (int) MADVISE.invokeExact(aligned, rounded, MADV_HUGEPAGE);
                return aligned;
            } catch (Error | RuntimeException e) {
                throw e;
            } catch (Throwable e) {
                throw new IllegalStateException("mmap for model weights", e);
            }
        }

        private static void unmap(long address, long size) {
            try {
                int ignored = (int) MUNMAP.invokeExact(MemorySegment.ofAddress(address), size);
            } catch (Throwable e) {
                throw new IllegalStateException("munmap of model weights", e);
            }
        }
    }
}
