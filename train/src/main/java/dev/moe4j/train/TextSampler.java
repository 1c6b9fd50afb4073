package dev.moe4j.train;

import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.SamplingConfig;
import dev.moe4j.model.generate.TokenText;
import dev.moe4j.model.transformer.Transformer;

import java.util.List;
import java.util.Set;

/**
 * Text from the model being trained, to see what it learned: the same {@link Generator} that
 * {@code moe4j generate} uses, drawing from softmax(logits / temperature) over the 50 most likely tokens
 * (transformers' default top-k), greedy at temperature 0, from a seeded generator.
 */
public final class TextSampler {
    private static final int TOP_K = 50;

    private TextSampler() {
    }

    /** The prompt followed by up to {@code tokens} sampled tokens (fewer when an id of {@code stop} comes). */
    public static String sample(Transformer model, Tokenizer tokenizer, String prompt, int tokens, double temperature,
                                long seed, Set<Integer> stop) {
        int[] ids = tokenizer.encodeIds(prompt, false);
        if (ids.length == 0) {
            ids = new int[] {0};
        }
        int budget = Math.min(tokens, model.config().maxPositions() - ids.length);
        if (budget <= 0) {
            return tokenizer.decode(ids, true);
        }
        SamplingConfig sampling = temperature <= 0 ? SamplingConfig.greedy()
                : SamplingConfig.DEFAULTS.withSample(true).withTemperature(temperature).withTopK(TOP_K).withSeed(seed);
        var options = new GenerationOptions(budget, sampling, stop, List.of(), null, false);
        var generator = new Generator(new TransformerModel(model, () -> { }), TokenText.of(tokenizer));
        var generation = generator.generate(ids, options, GenerationListener.NONE);
        return tokenizer.decode(ids, true) + generation.text();
    }
}
