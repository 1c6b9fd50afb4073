package dev.moe4j.model.testing;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;

import java.util.ArrayList;
import java.util.List;

/**
 * A deterministic stand-in for a language model, for testing what drives one (generation, scoring, traces)
 * without weights. After token t its logits favour {@link #successor}(t) by a clear margin, with a spread over the
 * others that depends on t and the position, so greedy decoding follows a known chain and sampling has a
 * distribution to draw from. Every layer routes the token at a position to experts (t + layer) mod E and
 * (t + layer + 1) mod E with weights 0.75 and 0.25. It enforces what a real model does: positions beyond the
 * state's capacity are refused.
 */
public class ToyModel implements LanguageModel {
    public static final int EXPERTS = 4;
    private final ModelConfig config;
    /** Every forward call: its first position and how many tokens it fed. */
    public final List<int[]> calls = new ArrayList<>();
    /** The tokens of every forward call. */
    public final List<int[]> fed = new ArrayList<>();
    /** States made and not released yet. */
    public int liveStates;

    public ToyModel(int vocabSize, int maxPositions, int layers) {
        // a tiny Mixtral config.json: the shape of the description matters, not its numbers
        String json = String.format("""
                {"model_type": "mixtral", "vocab_size": %d, "hidden_size": 8, "intermediate_size": 16,
                 "num_hidden_layers": %d, "num_attention_heads": 2, "num_key_value_heads": 2,
                 "num_local_experts": %d, "num_experts_per_tok": 2, "max_position_embeddings": %d}""",
                vocabSize, layers, EXPERTS, maxPositions);
        this.config = HfFamilies.read(Json.parse(json, "toy config"), "toy config");
    }

    /** The token greedy decoding picks after {@code token}. */
    public int successor(int token) {
        return (token * 5 + 3) % config.vocabSize();
    }

    /** The logit of {@code candidate} after {@code token} at {@code position}. */
    public float logit(int token, int position, int candidate) {
        if (candidate == successor(token)) {
            return 3.0f;
        }
        return (float) Math.sin(token * 31.0 + candidate * 17.0 + position * 0.5);
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public InferenceState newState(int maxTokens) {
        return new State(this, maxTokens);
    }

    @Override
    public Tensor forward(InferenceState state, int[] tokens, boolean lastOnly, ForwardObserver observer) {
        State s = (State) state;
        if (s.released) {
            throw new IllegalStateException("a released state was fed");
        }
        if (s.position + tokens.length > s.capacity) {
            throw new IllegalStateException("state of " + s.capacity + " positions cannot take " + tokens.length
                    + " more after " + s.position);
        }
        calls.add(new int[] {s.position, tokens.length});
        fed.add(tokens.clone());
        int vocab = config.vocabSize();
        int rows = lastOnly ? 1 : tokens.length;
        float[] out = new float[rows * vocab];
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab) {
                throw new IllegalArgumentException("token id " + tokens[i] + " outside the vocabulary");
            }
            int position = s.position + i;
            if (observer != null) {
                for (int layer = 0; layer < config.numLayers(); layer++) {
                    observer.onRouting(layer, position, new int[] {(tokens[i] + layer) % EXPERTS,
                            (tokens[i] + layer + 1) % EXPERTS}, new float[] {0.75f, 0.25f});
                }
            }
            int row = lastOnly ? (i == tokens.length - 1 ? 0 : -1) : i;
            if (row >= 0) {
                for (int v = 0; v < vocab; v++) {
                    out[row * vocab + v] = logit(tokens[i], position, v);
                }
            }
        }
        s.position += tokens.length;
        return Tensor.of(out, rows, vocab);
    }

    @Override
    public void close() {
    }

    private static final class State implements InferenceState {
        final ToyModel model;
        final int capacity;
        int position;
        boolean released;

        State(ToyModel model, int capacity) {
            this.model = model;
            this.capacity = capacity;
            model.liveStates++;
        }

        @Override
        public void release() {
            if (released) {
                throw new IllegalStateException("released twice");
            }
            released = true;
            model.liveStates--;
        }

        @Override
        public int position() {
            return position;
        }

        @Override
        public int capacity() {
            return capacity;
        }

        @Override
        public void rewind(int position) {
            if (position < 0 || position > this.position) {
                throw new IllegalArgumentException("cannot rewind " + this.position + " positions to " + position);
            }
            this.position = position;
        }

        @Override
        public InferenceState grown(int capacity) {
            var bigger = new State(model, capacity);
            bigger.position = position;
            return bigger;
        }
    }
}
