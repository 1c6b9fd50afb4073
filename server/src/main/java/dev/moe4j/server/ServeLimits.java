package dev.moe4j.server;

import dev.moe4j.core.BadInputException;

/**
 * What a server takes on at once: the largest request body it reads, the requests it decodes together, how many may
 * wait for room before more are answered 503, the KV cache memory the running requests may fill (0: no limit; each
 * request counted at its prompt plus its token budget), and how long a request may take from its arrival (0: no
 * limit; past it, 504), and the memory of the prefix cache: KV blocks of finished requests kept for later requests
 * that begin alike (0: none).
 */
public record ServeLimits(int maxRequestBytes, int parallel, int maxWaiting, long kvCacheBytes,
                          double requestTimeoutSeconds, long prefixCacheBytes) {
    /** The prefix cache's default size: KV blocks kept for later requests beyond the running ones'. */
    public static final long DEFAULT_PREFIX_CACHE_BYTES = 256L << 20;
    public static final ServeLimits DEFAULT = new ServeLimits(ModelServer.DEFAULT_MAX_REQUEST_BYTES,
            ModelServer.DEFAULT_PARALLEL, ModelServer.DEFAULT_MAX_WAITING, 0, 0, DEFAULT_PREFIX_CACHE_BYTES);

    /** Refuses, naming the serve option, a limit that cannot hold. */
    public ServeLimits {
        if (maxRequestBytes < 1) {
            throw new BadInputException("--max-request-bytes must be positive, got " + maxRequestBytes);
        }
        if (parallel < 1) {
            throw new BadInputException("--parallel must be at least 1, got " + parallel);
        }
        if (maxWaiting < 0) {
            throw new BadInputException("--max-waiting must not be negative, got " + maxWaiting);
        }
        if (kvCacheBytes < 0) {
            throw new BadInputException("--kv-cache-size must not be negative, got " + kvCacheBytes);
        }
        if (!(requestTimeoutSeconds >= 0) || Double.isInfinite(requestTimeoutSeconds)) {
            throw new BadInputException("--request-timeout must be a number of seconds, 0 or more, got "
                    + requestTimeoutSeconds);
        }
        if (prefixCacheBytes < 0) {
            throw new BadInputException("--prefix-cache-size must not be negative, got " + prefixCacheBytes);
        }
    }

    public ServeLimits withMaxRequestBytes(int bytes) {
        return new ServeLimits(bytes, parallel, maxWaiting, kvCacheBytes, requestTimeoutSeconds, prefixCacheBytes);
    }

    public ServeLimits withParallel(int n) {
        return new ServeLimits(maxRequestBytes, n, maxWaiting, kvCacheBytes, requestTimeoutSeconds, prefixCacheBytes);
    }

    public ServeLimits withMaxWaiting(int n) {
        return new ServeLimits(maxRequestBytes, parallel, n, kvCacheBytes, requestTimeoutSeconds, prefixCacheBytes);
    }

    public ServeLimits withKvCacheBytes(long bytes) {
        return new ServeLimits(maxRequestBytes, parallel, maxWaiting, bytes, requestTimeoutSeconds, prefixCacheBytes);
    }

    public ServeLimits withPrefixCacheBytes(long bytes) {
        return new ServeLimits(maxRequestBytes, parallel, maxWaiting, kvCacheBytes, requestTimeoutSeconds, bytes);
    }

    public ServeLimits withRequestTimeout(double seconds) {
        return new ServeLimits(maxRequestBytes, parallel, maxWaiting, kvCacheBytes, seconds, prefixCacheBytes);
    }

    /**
     * A size in bytes as the command line writes it: a whole number, optionally followed by k, m or g (powers of
     * 1024), e.g. 512m, 8g.
     */
    public static long parseSize(String text, String option) {
        String t = text.trim().toLowerCase(java.util.Locale.ROOT);
        long unit = 1;
        if (!t.isEmpty() && "kmg".indexOf(t.charAt(t.length() - 1)) >= 0) {
            unit = 1L << (10 * ("kmg".indexOf(t.charAt(t.length() - 1)) + 1));
            t = t.substring(0, t.length() - 1);
        }
        try {
            long n = Long.parseLong(t);
            if (n < 0) {
                throw new NumberFormatException();
            }
            return Math.multiplyExact(n, unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new BadInputException(option + ": expected a size such as 512m or 8g, got '" + text + "'");
        }
    }
}
