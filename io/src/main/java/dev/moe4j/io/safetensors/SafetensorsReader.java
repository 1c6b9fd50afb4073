package dev.moe4j.io.safetensors;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * One safetensors file, memory-mapped: the header is read and validated first ({@link SafetensorsHeader}), then the
 * data section is mapped, and {@link #tensor} returns views on the mapping without copying. Closing the reader
 * (or the arena it was opened in) unmaps the file; tensors taken from it must not be used afterwards.
 */
public final class SafetensorsReader implements AutoCloseable {
    private final Path path;
    private final SafetensorsHeader header;
    private final long dataOffset;
    private final MemorySegment data;
    private final Arena ownArena;

    private SafetensorsReader(Path path, SafetensorsHeader header, long dataOffset, MemorySegment data,
                              Arena ownArena) {
        this.path = path;
        this.header = header;
        this.dataOffset = dataOffset;
        this.data = data;
        this.ownArena = ownArena;
    }

    /** Opens and maps a file in an arena of its own, released by {@link #close}. */
    public static SafetensorsReader open(Path path) {
        Arena arena = Arena.ofShared();
        try {
            return open(path, arena, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Opens and maps a file in the caller's arena; closing the reader then leaves the arena to its owner. */
    public static SafetensorsReader open(Path path, Arena arena) {
        return open(path, arena, null);
    }

    private static SafetensorsReader open(Path path, Arena arena, Arena ownArena) {
        String source = path.toString();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw new BadInputException(source + ": " + size
                        + " bytes is too short for a safetensors file (the header length alone takes 8)");
            }
            long declared = readFully(channel, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            long headerLength = SafetensorsHeader.checkLength(source, declared, size);
            byte[] json = new byte[(int) headerLength];
            readFully(channel, 8, (int) headerLength).get(json);
            long dataOffset = 8 + headerLength;
            SafetensorsHeader header = SafetensorsHeader.parse(source, json, size - dataOffset);
            MemorySegment data = size == dataOffset
                    ? MemorySegment.ofArray(new byte[0])
                    : channel.map(FileChannel.MapMode.READ_ONLY, dataOffset, size - dataOffset, arena);
            return new SafetensorsReader(path, header, dataOffset, data, ownArena);
        } catch (NoSuchFileException e) {
            throw new BadInputException(source + ": no such file");
        } catch (AccessDeniedException e) {
            throw new BadInputException(source + ": permission denied");
        } catch (IOException e) {
            throw new BadInputException(source + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static ByteBuffer readFully(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(length);
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, position + buffer.position()) < 0) {
                throw new IOException("file ended while reading its header");
            }
        }
        return buffer.flip();
    }

    /** Whether the file looks like safetensors by name; the content is validated on {@link #open}. */
    public static boolean isSafetensorsName(Path path) {
        return path.getFileName() != null && path.getFileName().toString().endsWith(".safetensors")
                && !Files.isDirectory(path);
    }

    public Path path() {
        return path;
    }

    /** The {@code __metadata__} strings of the file (empty when it has none). */
    public Map<String, String> metadata() {
        return header.metadata();
    }

    /** Every tensor's header entry, in the order the data lies in the file. */
    public List<TensorEntry> entries() {
        return header.entries();
    }

    /** Tensor names, in data order. */
    public Set<String> names() {
        return header.byName().keySet();
    }

    public Optional<TensorEntry> entry(String name) {
        return Optional.ofNullable(header.byName().get(name));
    }

    /** Bytes before the data section: the 8-byte length and the JSON header. */
    public long dataOffset() {
        return dataOffset;
    }

    /** A view of the named tensor on the mapped file (no copy). */
    public Tensor tensor(String name) {
        TensorEntry e = entry(name).orElseThrow(
                () -> new BadInputException(path + ": no tensor named " + BadInputException.quote(name)));
        return tensor(e);
    }

    /** A view of a tensor of this file, given its entry. */
    public Tensor tensor(TensorEntry e) {
        return Tensor.wrap(e.dtype(), data.asSlice(e.begin(), e.byteLength()), e.dims());
    }

    @Override
    public void close() {
        if (ownArena != null && ownArena.scope().isAlive()) {
            ownArena.close();
        }
    }

    @Override
    public String toString() {
        return "SafetensorsReader[" + path + ", " + header.entries().size() + " tensors]";
    }
}
