package dev.moe4j.server;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.config.ModelConfig;

import java.util.Arrays;
import java.util.function.BooleanSupplier;

/**
 * The served model as one generation sees it. It remembers the id fed at each position, so that the expert
 * extension can name each token while the reply streams (the generator reports text by position, not by id), and
 * it ends the generation between two forward passes once the server is closing or the client has gone. Closing it
 * leaves the served model open.
 */
final class TrackedModel implements LanguageModel {
    private final LanguageModel model;
    private final BooleanSupplier closing;
    private final BooleanSupplier clientGone;
    private int[] ids = new int[256];
    private int fed;

    TrackedModel(LanguageModel model, BooleanSupplier closing, BooleanSupplier clientGone) {
        this.model = model;
        this.closing = closing;
        this.clientGone = clientGone;
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
        if (closing.getAsBoolean()) {
            throw Cancelled.closing();
        }
        if (clientGone.getAsBoolean()) {
            throw Cancelled.clientLeft(null);
        }
        int from = state.position();
        if (from + tokens.length > ids.length) {
            ids = Arrays.copyOf(ids, Math.max(2 * ids.length, from + tokens.length));
        }
        System.arraycopy(tokens, 0, ids, from, tokens.length);
        fed = Math.max(fed, from + tokens.length);
        return model.forward(state, tokens, lastOnly, observer);
    }

    /** Positions fed so far. */
    int fed() {
        return fed;
    }

    /** The id fed at {@code position} (below {@link #fed()}). */
    int idAt(int position) {
        return ids[position];
    }

    @Override
    public void close() {
    }
}
