package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.gguf.GgmlType;

import java.util.Arrays;
import java.util.Locale;

/**
 * A GGUF file's type as llama.cpp names it (its {@code general.file_type}, the {@code llama-quantize} argument):
 * a default type for the matrices and, for the mixtures, the rule that gives some matrices more bits. Norms and
 * routers are never quantised; they stay F32.
 *
 * <p>{@link #typeOf} follows llama.cpp's {@code llama_tensor_get_type} for these file types, for the tensors moe4j
 * writes (no fused QKV, no Falcon, no importance matrix, no 70B rule). It differs in one place: where a matrix's
 * rows are not whole blocks of its type, llama.cpp falls back to Q5_0/Q5_1, which moe4j does not write; moe4j takes
 * Q8_0 there (more bits, not fewer), and F16 where even Q8_0's 32 do not divide the rows, as llama.cpp does.
 */
public enum GgufFileType {
    F32(0, GgmlType.F32), F16(1, GgmlType.F16), BF16(32, GgmlType.BF16),
    Q8_0(7, GgmlType.Q8_0), Q4_0(2, GgmlType.Q4_0),
    /** Q4_K, with Q6_K for attn_v and ffn_down in a third of the layers (the first and last eighth among them). */
    Q4_K_M(15, GgmlType.Q4_K),
    /** Q5_K, with Q6_K where Q4_K_M takes it. */
    Q5_K_M(17, GgmlType.Q5_K),
    Q6_K(18, GgmlType.Q6_K),
    /** MXFP4 for the stacked tensors (the experts), Q8_0 for every other matrix (gpt-oss's own layout). */
    MXFP4_MOE(38, GgmlType.MXFP4);

    private final int id;
    private final GgmlType defaultType;

    GgufFileType(int id, GgmlType defaultType) {
        this.id = id;
        this.defaultType = defaultType;
    }

    /** llama.cpp's {@code llama_ftype} value, stored as {@code general.file_type}. */
    public int id() {
        return id;
    }

    /** The type of the matrices no rule singles out. */
    public GgmlType defaultType() {
        return defaultType;
    }

    /** True when the matrices are block-quantised (the file then records ggml's quantisation version). */
    public boolean isQuantized() {
        return defaultType.dtype().isBlockQuantized();
    }

    /** The file type named as llama.cpp names it, case-insensitively: f16, q8_0, q4_k_m, ... */
    public static GgufFileType parse(String name, String field) {
        for (GgufFileType t : values()) {
            if (t.name().equalsIgnoreCase(name)) {
                return t;
            }
        }
        throw new BadInputException(field + ": expected one of " + names() + ", got '" + name + "'");
    }

    /** The file type of a model whose matrices are all {@code type}, as moe4j writes it when told to keep them. */
    public static GgufFileType of(GgmlType type) {
        for (GgufFileType t : values()) {
            if (t.defaultType == type) {
                return t;
            }
        }
        throw new IllegalArgumentException("no GGUF file type has " + type + " matrices");
    }

    /** Every file type's name in lower case, for help and messages. */
    public static String names() {
        return String.join(", ", Arrays.stream(values()).map(t -> t.name().toLowerCase(Locale.ROOT)).toList());
    }

    /** What the type rules need to know of the model: layers, experts per MoE layer, output tied to the embedding. */
    public record Model(int layers, int experts, boolean tiedEmbeddings) {
    }

    /**
     * The type of the tensor {@code name} (llama.cpp's name) of row-major {@code shape}; F32 for what llama.cpp
     * never quantises (norms, routers and any tensor of fewer than two dimensions).
     */
    public GgmlType typeOf(String name, int[] shape, Model model) {
        if (!quantizable(name, shape)) {
            return GgmlType.F32;
        }
        if (!isQuantized()) {
            return defaultType;
        }
        int rows = shape[shape.length - 1];
        GgmlType type = defaultType;
        boolean output = name.equals("output.weight") || model.tiedEmbeddings() && name.equals("token_embd.weight");
        if (output) {
            if (this == MXFP4_MOE || rows % defaultType.dtype().blockElements() != 0) {
                type = GgmlType.Q8_0;
            } else if (type != GgmlType.Q8_0) {
                type = GgmlType.Q6_K;
            }
        } else if (this == MXFP4_MOE) {
            // every stacked tensor, as llama.cpp decides it: deepseek2's per-head attn_k_b and attn_v_b too
            type = shape.length == 3 && shape[0] > 1 ? GgmlType.MXFP4 : GgmlType.Q8_0;
        } else if (name.contains("attn_v.weight") || name.contains("attn_kv_b.weight")) {
            // llama.cpp counts a latent attention's kv_b among the value projections
            if ((this == Q4_K_M || this == Q5_K_M) && moreBits(layer(name), model.layers())) {
                type = GgmlType.Q6_K;
            }
            if (model.experts() == 8) {
                // llama.cpp: for Mixtral-like models the shared attention costs little next to the experts
                type = GgmlType.Q8_0;
            }
        } else if (name.contains("attn_k.weight")) {
            if (model.experts() == 8) {
                type = GgmlType.Q8_0;
            }
        } else if (name.contains("ffn_down")) {
            if ((this == Q4_K_M || this == Q5_K_M) && moreBits(layer(name), model.layers())) {
                type = GgmlType.Q6_K;
            }
        } else if (name.contains("attn_output.weight")) {
            if (model.experts() == 8 && this == Q4_K_M) {
                type = GgmlType.Q5_K;
            }
        }
        return fallback(type, rows);
    }

    /** What llama.cpp quantises: 2D and 3D weights except norms and routers. */
    public static boolean quantizable(String name, int[] shape) {
        return shape.length >= 2 && name.endsWith("weight") && !name.contains("_norm.weight")
                && !name.contains("ffn_gate_inp.weight");
    }

    /** llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between. */
    static boolean moreBits(int layer, int layers) {
        return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
    }

    /** The layer of a "blk.N." tensor, which the rules for attn_v and ffn_down depend on. */
    private static int layer(String name) {
        int end = name.indexOf('.', 4);
        if (name.startsWith("blk.") && end > 4) {
            try {
                return Integer.parseInt(name.substring(4, end));
            } catch (NumberFormatException e) {
                // refused below
            }
        }
        throw new BadInputException("tensor '" + name + "': expected a name 'blk.N.' that gives its layer");
    }

    /** A type whose blocks fit rows of {@code rows} elements: Q8_0 for the K-quants, then F16. */
    private static GgmlType fallback(GgmlType type, int rows) {
        if (rows % type.dtype().blockElements() == 0) {
            return type;
        }
        if (type.dtype().blockElements() > 32 && rows % 32 == 0) {
            return GgmlType.Q8_0;
        }
        return GgmlType.F16;
    }
}
