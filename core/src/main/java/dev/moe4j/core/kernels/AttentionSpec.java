package dev.moe4j.core.kernels;

/**
 * The shape of scaled dot-product attention: query heads share key/value heads in groups (GQA; kvHeads =
 * heads is multi-head, 1 is multi-query), queries and keys have {@code headDim} features, values
 * {@code valueHeadDim} (they differ in DeepSeek's multi-head latent attention). {@code slidingWindow} > 0 lets a
 * query see only the keys fewer than that many positions behind it (itself included); 0 sees all earlier keys.
 * {@code causal} false lets every query see every key of its sequence, before and after it (an encoder: the patches
 * of an image have no order in which they must be predicted); a window is causal by definition.
 */
public record AttentionSpec(int heads, int kvHeads, int headDim, int valueHeadDim, float scale, int slidingWindow,
                            boolean causal) {
    public AttentionSpec {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("heads (" + heads + ") must be a positive multiple of kvHeads (" + kvHeads + ")");
        }
        if (headDim <= 0 || valueHeadDim <= 0 || slidingWindow < 0) {
            throw new IllegalArgumentException("bad attention shape " + headDim + "/" + valueHeadDim + "/" + slidingWindow);
        }
        if (!causal && slidingWindow > 0) {
            throw new IllegalArgumentException("a sliding window needs causal attention");
        }
    }

    /** Causal attention of the given shape (every decoder). */
    public AttentionSpec(int heads, int kvHeads, int headDim, int valueHeadDim, float scale, int slidingWindow) {
        this(heads, kvHeads, headDim, valueHeadDim, scale, slidingWindow, true);
    }

    /** Multi-head or grouped-query attention with the usual 1/√d scale and no window. */
    public static AttentionSpec of(int heads, int kvHeads, int headDim) {
        return new AttentionSpec(heads, kvHeads, headDim, headDim, (float) (1 / Math.sqrt(headDim)), 0);
    }

    public AttentionSpec withSlidingWindow(int window) {
        return new AttentionSpec(heads, kvHeads, headDim, valueHeadDim, scale, window, causal);
    }

    /** The same attention without the causal mask: each query sees all keys of its sequence. */
    public AttentionSpec bidirectional() {
        return new AttentionSpec(heads, kvHeads, headDim, valueHeadDim, scale, 0, false);
    }

    /** Index of the key/value head that query head {@code h} reads. */
    public int kvHeadOf(int h) {
        return h / (heads / kvHeads);
    }

    /** First key position visible from a query at {@code position}. */
    int firstVisible(int position) {
        return slidingWindow > 0 ? Math.max(0, position - slidingWindow + 1) : 0;
    }

    /** Last key position visible from a query at {@code position} among {@code keys} keys. */
    int lastVisible(int position, int keys) {
        return causal ? Math.min(keys - 1, position) : keys - 1;
    }
}
