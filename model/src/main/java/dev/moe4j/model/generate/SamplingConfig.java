package dev.moe4j.model.generate;

/**
 * How the next token is chosen from the logits: greedily (the highest logit after the repetition penalty) or by
 * sampling after temperature, top-k, top-p and min-p, in that order, as transformers' {@code generate} does.
 *
 * @param sample            sample from the distribution; otherwise take the highest logit (greedy)
 * @param temperature       logits are divided by it before sampling; positive
 * @param topK              keep only the k highest logits (ties with the k-th kept); 0 keeps all
 * @param topP              keep the smallest set of most probable tokens whose probabilities add up to at least
 *                          top-p; 1 keeps all
 * @param minP              drop tokens whose probability is below min-p times the top token's; 0 keeps all
 * @param repetitionPenalty CTRL's penalty on every token already in the prompt or the output: a positive logit is
 *                          divided by it, a negative one multiplied; 1 is none. Applies to greedy decoding too.
 * @param presencePenalty   OpenAI's presence penalty, in [-2, 2]: subtracted from the logit of every token the
 *                          output already holds; 0 is none. Applies to greedy decoding too.
 * @param frequencyPenalty  OpenAI's frequency penalty, in [-2, 2]: subtracted once per time a token occurs in the
 *                          output so far; 0 is none. Applies to greedy decoding too.
 * @param seed              seeds the random draws, so that the same seed gives the same tokens
 */
public record SamplingConfig(boolean sample, double temperature, int topK, double topP, double minP,
                             double repetitionPenalty, double presencePenalty, double frequencyPenalty, long seed) {
    /** transformers' defaults when neither generation_config.json nor the caller says otherwise. */
    public static final SamplingConfig DEFAULTS = new SamplingConfig(false, 1.0, 50, 1.0, 0.0, 1.0, 0);

    /** Without OpenAI's presence and frequency penalties. */
    public SamplingConfig(boolean sample, double temperature, int topK, double topP, double minP,
                          double repetitionPenalty, long seed) {
        this(sample, temperature, topK, topP, minP, repetitionPenalty, 0, 0, seed);
    }

    public SamplingConfig {
        if (!(temperature > 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be positive and finite, got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top-k must not be negative, got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new IllegalArgumentException("min-p must be in [0, 1], got " + minP);
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetition penalty must be positive and finite, got "
                    + repetitionPenalty);
        }
        if (!(presencePenalty >= -2 && presencePenalty <= 2) || !(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
            throw new IllegalArgumentException("presence and frequency penalties must be in [-2, 2], got "
                    + presencePenalty + " and " + frequencyPenalty);
        }
    }

    /** Greedy decoding without penalty. */
    public static SamplingConfig greedy() {
        return DEFAULTS;
    }

    /**
     * The defaults with a model's generation_config.json applied. A temperature of 0 there means greedy decoding
     * (transformers refuses it when sampling; llama.cpp and vLLM read it as greedy).
     */
    public static SamplingConfig of(GenerationConfig g) {
        SamplingConfig c = DEFAULTS;
        if (g.doSample().isPresent()) {
            c = c.withSample(g.doSample().get());
        }
        if (g.temperature().isPresent()) {
            c = g.temperature().getAsDouble() == 0 ? c.withSample(false) : c.withTemperature(g.temperature().getAsDouble());
        }
        if (g.topK().isPresent()) {
            c = c.withTopK(g.topK().getAsInt());
        }
        if (g.topP().isPresent() && g.topP().getAsDouble() > 0) {
            c = c.withTopP(g.topP().getAsDouble());
        }
        if (g.minP().isPresent()) {
            c = c.withMinP(g.minP().getAsDouble());
        }
        if (g.repetitionPenalty().isPresent()) {
            c = c.withRepetitionPenalty(g.repetitionPenalty().getAsDouble());
        }
        return c;
    }

    public SamplingConfig withSample(boolean sample) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
    }

    public SamplingConfig withTemperature(double temperature) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
    }

    public SamplingConfig withTopK(int topK) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
    }

    public SamplingConfig withTopP(double topP) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
    }

    public SamplingConfig withMinP(double minP) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
    }

    public SamplingConfig withRepetitionPenalty(double penalty) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, penalty, presencePenalty, frequencyPenalty, seed);
    }

    public SamplingConfig withPenalties(double presence, double frequency) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presence, frequency, seed);
    }

    public SamplingConfig withSeed(long seed) {
        return new SamplingConfig(sample, temperature, topK, topP, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed);
    }

    /** One line for logs and --json: what decides the next token. */
    public String describe() {
        String penalties = (repetitionPenalty != 1 ? ", repetition penalty " + repetitionPenalty : "")
                + (presencePenalty != 0 ? ", presence penalty " + presencePenalty : "")
                + (frequencyPenalty != 0 ? ", frequency penalty " + frequencyPenalty : "");
        if (!sample) {
            return "greedy" + penalties;
        }
        var s = new StringBuilder("sampling: temperature ").append(temperature);
        if (topK > 0) {
            s.append(", top-k ").append(topK);
        }
        if (topP < 1) {
            s.append(", top-p ").append(topP);
        }
        if (minP > 0) {
            s.append(", min-p ").append(minP);
        }
        return s.append(penalties).append(", seed ").append(seed).toString();
    }
}
