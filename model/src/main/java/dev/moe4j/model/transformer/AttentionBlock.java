package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;

/** The attention of a decoder layer: normalised hidden states in, what it adds to the residual stream out. */
sealed interface AttentionBlock permits StandardAttention, LatentAttention {
    /** x [rows, hidden] → [rows, hidden]; {@code layer} selects the layer's part of a KV cache. */
    Var forward(Graph g, Var x, Batch batch, int layer);

    /** Width of one position's cached keys. */
    int keyWidth();

    /** Width of one position's cached values. */
    int valueWidth();
}
