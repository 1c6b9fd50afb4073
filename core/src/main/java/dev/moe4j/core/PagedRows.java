package dev.moe4j.core;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The first {@code rows} rows of a matrix held in pieces: each piece a contiguous [n_i, width] tensor, the rows in
 * order across them (a paged KV cache, whose blocks lie wherever its pool had room). One piece is a plain matrix.
 */
public record PagedRows(List<Tensor> pieces, int rows) {
    public PagedRows {
        pieces = List.copyOf(pieces);
        if (pieces.isEmpty()) {
            throw new IllegalArgumentException("paged rows need at least one piece");
        }
        int held = 0, width = pieces.getFirst().cols();
        for (Tensor p : pieces) {
            if (p.cols() != width || p.dtype() != pieces.getFirst().dtype()) {
                throw new IllegalArgumentException("pieces of paged rows differ in width or dtype: " + pieces);
            }
            held += p.rows();
        }
        if (rows != held) {
            throw new IllegalArgumentException(rows + " rows in pieces holding " + held);
        }
    }

    /** A contiguous matrix as one piece. */
    public static PagedRows of(Tensor matrix) {
        return new PagedRows(List.of(matrix), matrix.rows());
    }

    public int cols() {
        return pieces.getFirst().cols();
    }

    public boolean contiguous() {
        return pieces.size() == 1;
    }

    /** The rows as one host matrix: the piece itself when there is one, else a copy. Host pieces only. */
    public Tensor gatheredOnHost() {
        if (contiguous()) {
            return pieces.getFirst();
        }
        Tensor all = Tensor.zeros(pieces.getFirst().dtype(), rows, cols());
        long at = 0;
        for (Tensor p : pieces) {
            MemorySegment.copy(p.segment(), 0, all.segment(), at, p.segment().byteSize());
            at += p.segment().byteSize();
        }
        return all;
    }
}
