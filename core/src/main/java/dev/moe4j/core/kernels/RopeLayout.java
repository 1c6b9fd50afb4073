package dev.moe4j.core.kernels;

/** Which elements of a head RoPE rotates together. */
public enum RopeLayout {
    /** Pairs (i, i + rotaryDim/2): Hugging Face's rotate_half, the default of Llama-style checkpoints. */
    HALF,
    /** Pairs (2i, 2i + 1): the original Llama and DeepSeek's rope_interleave layout. */
    INTERLEAVED
}
