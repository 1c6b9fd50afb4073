package dev.moe4j.model.lora;

import dev.moe4j.core.autograd.Lora;
import dev.moe4j.moe.expert.ExpertLora;

/**
 * Where a model's LoRA adapters come from: made fresh for training ({@link FreshAdapters}) or read from a PEFT
 * adapter folder ({@link PeftAdapter}). Asked, through {@link AdaptedWeights}, for each place the model could adapt.
 */
interface AdapterSource {
    /** The adapter on weight {@code weight} [out, in] (a [r, in], b [out, r]), or null. */
    Lora linear(String weight, int out, int in);

    /** Per-expert adapters on the projection {@code name} of {@code experts} experts, W_e [out, in], or null. */
    ExpertLora experts(String name, int experts, int out, int in);

    /** Refuses adapters the model never asked for, once it is built. */
    default void requireAllUsed() {
    }
}
