package dev.moe4j.io.idx;

import dev.moe4j.core.BadInputException;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * An array of unsigned bytes in LeCun's IDX format, the format of MNIST and Fashion-MNIST: two zero bytes, a type
 * code (0x08, unsigned byte: the only type those data sets use), the number of dimensions, each dimension as a
 * big-endian 32-bit count, then the values in row-major order. A file may be gzip-compressed as distributed
 * ({@code .gz}, recognised by its first bytes).
 *
 * <p>The header is checked before the values are read (magic, a type of unsigned bytes, 1 to 4 dimensions, each
 * positive, at most {@link #MAX_VALUES} values) and the data must be exactly as long as it declares, so a truncated
 * or padded file is refused in one line naming the file and the field rather than read as a shorter set.
 *
 * @param dims   the dimensions, outermost first ([images, rows, columns] or [labels])
 * @param values the values, row-major
 */
public record IdxFile(int[] dims, byte[] values) {
    /** The type code of unsigned bytes. */
    static final int UNSIGNED_BYTE = 0x08;
    /** The largest array read: 64 Mi values, well above Fashion-MNIST's 47 million pixels. */
    static final long MAX_VALUES = 64L << 20;

    public IdxFile {
        dims = dims.clone();
    }

    /** The number of entries along the first dimension (images, labels). */
    public int count() {
        return dims[0];
    }

    /** Values per entry: the product of the dimensions after the first (1 for a vector). */
    public int entrySize() {
        int size = 1;
        for (int i = 1; i < dims.length; i++) {
            size *= dims[i];
        }
        return size;
    }

    /** Value {@code i} as an unsigned number. */
    public int unsigned(long i) {
        return values[Math.toIntExact(i)] & 0xFF;
    }

    /** Reads and checks {@code file}, gzip-compressed or not. */
    public static IdxFile read(Path file) {
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(file))) {
            raw.mark(2);
            boolean gzip = raw.read() == 0x1f && raw.read() == 0x8b;
            raw.reset();
            InputStream in = gzip ? new GZIPInputStream(raw) : raw;
            return read(new DataInputStream(in), file);
        } catch (EOFException e) {
            throw new BadInputException(file + ": IDX data ends before the size its header declares");
        } catch (ZipException e) {
            throw new BadInputException(file + ": not a valid gzip stream (" + BadInputException.oneLine(e.getMessage())
                    + ")");
        } catch (IOException e) {
            throw new BadInputException(file + ": cannot read (" + BadInputException.oneLine(e.getMessage()) + ")");
        }
    }

    private static IdxFile read(DataInputStream in, Path file) throws IOException {
        int zero1 = in.read(), zero2 = in.read(), type = in.read(), rank = in.read();
        if (rank < 0) {
            throw new BadInputException(file + ": too short for an IDX header (4 bytes of magic)");
        }
        if (zero1 != 0 || zero2 != 0) {
            throw new BadInputException(String.format("%s: magic: expected an IDX file (00 00 type rank), got %02x %02x",
                    file, zero1, zero2));
        }
        if (type != UNSIGNED_BYTE) {
            throw new BadInputException(String.format("%s: type: expected 0x08 (unsigned bytes), got 0x%02x", file,
                    type));
        }
        if (rank < 1 || rank > 4) {
            throw new BadInputException(file + ": dimensions: expected 1 to 4, got " + rank);
        }
        int[] dims = new int[rank];
        long total = 1;
        for (int i = 0; i < rank; i++) {
            dims[i] = in.readInt();
            if (dims[i] <= 0) {
                throw new BadInputException(file + ": dimension " + i + ": expected a positive size, got "
                        + Integer.toUnsignedString(dims[i]));
            }
            total *= dims[i];
            if (total > MAX_VALUES) {
                throw new BadInputException(file + ": dimensions " + Arrays.toString(Arrays.copyOf(dims, i + 1))
                        + ": more than " + MAX_VALUES + " values");
            }
        }
        byte[] values = new byte[(int) total];
        in.readFully(values);
        if (in.read() != -1) {
            throw new BadInputException(file + ": data: longer than the " + total + " values its header "
                    + Arrays.toString(dims) + " declares");
        }
        return new IdxFile(dims, values);
    }
}
