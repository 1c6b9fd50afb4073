package dev.moe4j.model.config;

/**
 * The RMS norms: their epsilon (every norm of the model shares it) and the optional query/key norm. Every layer
 * has a norm before attention and one before the feed-forward, and the model one before the LM head.
 */
public record NormConfig(double eps, QkNorm qkNorm) {
    public NormConfig {
        if (!(eps > 0)) {
            throw new IllegalArgumentException("norm eps must be positive, got " + eps);
        }
    }
}
