package dev.moe4j.model.testing;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.List;

/**
 * A model that hands every call to another: tests extend it to watch or hold the calls they care about (passes
 * counted, held until released) and leave the rest as the real model does them.
 */
public abstract class ForwardingModel implements LanguageModel {
    protected final LanguageModel model;

    protected ForwardingModel(LanguageModel model) {
        this.model = model;
    }

    @Override
    public ModelConfig config() {
        return model.config();
    }

    @Override
    public InferenceState newState(int maxTokens) {
        return model.newState(maxTokens);
    }

    @Override
    public Tensor forward(InferenceState state, int[] tokens, boolean lastOnly, ForwardObserver observer) {
        return model.forward(state, tokens, lastOnly, observer);
    }

    @Override
    public Tensor forward(List<InferenceState> states, List<int[]> tokens) {
        return model.forward(states, tokens);
    }

    @Override
    public void checkRouting(RoutingPolicy policy, RoutingPolicy.Naming naming) {
        model.checkRouting(policy, naming);
    }

    @Override
    public long kvBytesPerPosition() {
        return model.kvBytesPerPosition();
    }

    @Override
    public void countExpertLoads(ExpertLoads loads) {
        model.countExpertLoads(loads);
    }

    @Override
    public void close() {
        model.close();
    }
}
