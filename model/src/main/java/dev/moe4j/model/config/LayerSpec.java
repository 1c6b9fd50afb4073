package dev.moe4j.model.config;

/**
 * What one decoder layer holds: a mixture of experts or a dense MLP as its feed-forward, and attention over all
 * previous tokens or over a sliding window of the last {@code slidingWindow} tokens.
 *
 * @param slidingWindow the window in tokens, or 0 for full causal attention
 */
public record LayerSpec(boolean moe, int slidingWindow) {
    public LayerSpec {
        if (slidingWindow < 0) {
            throw new IllegalArgumentException("slidingWindow must be 0 (full attention) or positive, got "
                    + slidingWindow);
        }
    }

    public static LayerSpec moeLayer() {
        return new LayerSpec(true, 0);
    }

    public static LayerSpec denseLayer() {
        return new LayerSpec(false, 0);
    }

    public boolean isSliding() {
        return slidingWindow > 0;
    }
}
