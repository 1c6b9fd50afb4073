package dev.moe4j.io.gguf;

import dev.moe4j.core.DType;

import java.util.Optional;

/**
 * The ggml tensor types that moe4j writes and reads in GGUF files, under ggml's numeric ids (the id is what a
 * GGUF tensor info stores): the float types and the block-quantised ones whose codecs core has
 * ({@code dev.moe4j.core.quant.BlockCodec}). Every other id is named for messages only.
 */
public enum GgmlType {
    F32(0, DType.F32), F16(1, DType.F16), BF16(30, DType.BF16),
    Q8_0(8, DType.Q8_0), Q4_0(2, DType.Q4_0), Q4_K(12, DType.Q4_K), Q5_K(13, DType.Q5_K), Q6_K(14, DType.Q6_K),
    MXFP4(39, DType.MXFP4);

    /** ggml's names of its type ids 0..39, so that a type moe4j does not handle can be named in an error. */
    private static final String[] NAMES = {"F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0",
            "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
            "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4",
            "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};

    private final int id;
    private final DType dtype;

    GgmlType(int id, DType dtype) {
        this.id = id;
        this.dtype = dtype;
    }

    /** ggml's id of the type, as stored in a tensor info. */
    public int id() {
        return id;
    }

    /** The element type of a moe4j tensor of this type. */
    public DType dtype() {
        return dtype;
    }

    /** The type that stores {@code dtype} elements as they are, if GGUF has one moe4j writes. */
    public static Optional<GgmlType> of(DType dtype) {
        for (GgmlType t : values()) {
            if (t.dtype == dtype) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    /** The type with ggml id {@code id}, if moe4j reads it. */
    public static Optional<GgmlType> byId(long id) {
        for (GgmlType t : values()) {
            if (t.id == id) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    /** The types moe4j reads and writes, for messages: "F32, F16, BF16, Q8_0, ...". */
    public static String supported() {
        return String.join(", ", java.util.Arrays.stream(values()).map(Enum::name).toList());
    }

    /** ggml's name of a type id, e.g. {@code Q8_0} for 8, for messages about types moe4j does not handle. */
    public static String nameOf(long id) {
        return id >= 0 && id < NAMES.length ? NAMES[(int) id] : "unknown";
    }
}
