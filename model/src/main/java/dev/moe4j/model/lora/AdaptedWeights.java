package dev.moe4j.model.lora;

import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.transformer.ExpertStorage;
import dev.moe4j.model.transformer.WeightSource;
import dev.moe4j.moe.expert.ExpertLora;

/**
 * A source's weights with LoRA adapters beside them: the weights as the source gives them (a checkpoint's frozen
 * tensors, memory-mapped or copied, in their stored type), the adapters from an {@link AdapterSource}.
 */
public final class AdaptedWeights implements WeightSource {
    private final WeightSource weights;
    private final AdapterSource adapters;

    AdaptedWeights(WeightSource weights, AdapterSource adapters) {
        this.weights = weights;
        this.adapters = adapters;
    }

    /** {@code weights} with new adapters made as {@code settings} say, for a model of {@code config}. */
    public static AdaptedWeights fresh(WeightSource weights, LoraSettings settings,
                                       dev.moe4j.model.config.ModelConfig config) {
        return new AdaptedWeights(weights, new FreshAdapters(settings, config));
    }

    /** {@code weights} with the adapters of a PEFT adapter folder. */
    public static AdaptedWeights of(WeightSource weights, PeftAdapter adapter) {
        return new AdaptedWeights(weights, adapter);
    }

    @Override
    public Var weight(String name, int... shape) {
        return weights.weight(name, shape);
    }

    @Override
    public ExpertStorage expertStorage() {
        return weights.expertStorage();
    }

    @Override
    public Lora adapter(String name, int out, int in) {
        return adapters.linear(name, out, in);
    }

    @Override
    public ExpertLora expertAdapter(String name, int experts, int out, int in) {
        return adapters.experts(name, experts, out, in);
    }

    /** Refuses adapters the built model has no place for. */
    public void requireAllUsed() {
        adapters.requireAllUsed();
    }
}
