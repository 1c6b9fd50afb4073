package dev.moe4j.core.kernels;

/**
 * The shape of scaled dot-product attention: query heads share key/value heads in groups (GQA; kvHeads =
 * heads is multi-head, 1 is multi-query), queries and keys have {@code headDim} features, values
 * {@code valueHeadDim} (they differ in DeepSeek's multi-head latent attention). {@code slidingWindow} > 0 lets a
 * query see only the keys fewer than that many positions behind it (itself included); 0 sees all earlier keys.
 */
public record AttentionSpec(int heads, int kvHeads, int headDim, int valueHeadDim, float scale, int slidingWindow) {
    public AttentionSpec {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("heads (" + heads + ") must be a positive multiple of kvHeads (" + kvHeads + ")");
        }
        if (headDim <= 0 || valueHeadDim <= 0 || slidingWindow < 0) {
            throw new IllegalArgumentException("bad attention shape " + headDim + "/" + valueHeadDim + "/" + slidingWindow);
        }
    }

    /** Multi-head or grouped-query attention with the usual 1/√d scale and no window. */
    public static AttentionSpec of(int heads, int kvHeads, int headDim) {
        return new AttentionSpec(heads, kvHeads, headDim, headDim, (float) (1 / Math.sqrt(headDim)), 0);
    }

    public AttentionSpec withSlidingWindow(int window) {
        return new AttentionSpec(heads, kvHeads, headDim, valueHeadDim, scale, window);
    }

    /** Index of the key/value head that query head {@code h} reads. */
    public int kvHeadOf(int h) {
        return h / (heads / kvHeads);
    }

    /** First key position visible from a query at {@code position}. */
    int firstVisible(int position) {
        return slidingWindow > 0 ? Math.max(0, position - slidingWindow + 1) : 0;
    }
}
