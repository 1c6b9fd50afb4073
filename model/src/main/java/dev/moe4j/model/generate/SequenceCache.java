package dev.moe4j.model.generate;

import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One sequence's state in a model kept from one generation to the next, with the exact token ids it holds, so
 * that a prompt starting with those ids is fed only from where it differs (llama.cpp's prompt cache of a slot,
 * vLLM's prefix caching for one sequence). A chat turn re-renders the whole conversation; with this, it feeds only
 * the new messages. An empty cache is a fresh prefill: the {@link Generator} runs the same code with nothing kept.
 *
 * <p>The ids are recorded after each forward pass that succeeded, so a generation that fails or is cancelled
 * leaves the cache holding what was fed before the failure and nothing else. Use it with one model, one
 * generation at a time (a {@link BatchScheduler} feeds many caches together, each for one of its sequences).
 */
public final class SequenceCache {
    private InferenceState state;
    private int[] ids = new int[0];
    private int length;

    /** Positions held, the ids of which {@link #ids} returns. */
    public int length() {
        return length;
    }

    /** The ids the state holds, in order: every prompt and generated token that went through the model. */
    public int[] ids() {
        return Arrays.copyOf(ids, length);
    }

    /** The id held at {@code position} (below {@link #length}). */
    public int idAt(int position) {
        if (position < 0 || position >= length) {
            throw new IndexOutOfBoundsException("position " + position + " of " + length);
        }
        return ids[position];
    }

    /**
     * Makes this cache a copy of {@code other}'s sequence (its state's filled positions and its ids) with room for
     * {@code capacity} positions, giving back what this one held: a sibling of a sequence starts from its prompt
     * without feeding it again.
     */
    void copyFrom(SequenceCache other, int capacity) {
        InferenceState copy = other.state.grown(Math.max(capacity, other.length));
        release();
        state = copy;
        ids = Arrays.copyOf(other.ids, other.length);
        length = other.length;
    }

    /** Forgets the sequence (keeping the memory), so that the next prompt is fed whole. */
    public void clear() {
        rewind(0);
    }

    /** Gives back the state's memory (a GPU's KV cache) and forgets the sequence; a next prompt starts afresh. */
    public void release() {
        if (state != null) {
            state.release();
            state = null;
        }
        length = 0;
    }

    /**
     * Makes the cache ready to feed {@code prompt} with room for {@code capacity} positions, and returns how many
     * of its leading ids are kept: the longest prefix shared with the ids held or found in the model's prefix cache,
     * short of the last prompt token (a pass must run for the next token's logits), or none where the model routes
     * tokens depending on the batch.
     * The state grows, keeping what it holds, when it has no room.
     */
    int prepare(LanguageModel model, int[] prompt, int capacity) {
        return prepare(model, prompt, capacity, RoutingPolicy.TRAINED);
    }

    /**
     * {@link #prepare(LanguageModel, int[], int)} for a sequence routed by {@code routing}: a prefix computed with
     * another routing is not kept, nor any where the policy makes the tokens of a pass compete (a capacity).
     */
    int prepare(LanguageModel model, int[] prompt, int capacity, RoutingPolicy routing) {
        boolean sameRouting = state == null || state.routing().equals(routing);
        int kept = sameRouting && reusable(model) && routing.routesEachTokenAlone()
                ? Math.min(commonPrefix(ids, length, prompt), prompt.length - 1) : 0;
        rewind(kept);
        if (state == null) {
            state = model.newState(capacity);
        } else if (state.capacity() < capacity) {
            // doubling keeps a growing chat from copying its cache every turn
            int room = Math.max(capacity, Math.min(model.config().maxPositions(), 2 * state.capacity()));
            InferenceState outgrown = state;
            state = kept == 0 ? model.newState(room) : state.grown(room);
            outgrown.release();
        }
        state.routing(routing);
        if (model.cachingPrefixes() && sameRouting && reusable(model) && kept < prompt.length - 1) {
            kept = takeCachedPrefix(model, prompt, capacity, kept);
        }
        return kept;
    }

    /**
     * Takes the beginning of the prompt from the model's prefix cache (blocks other sequences computed) where it
     * holds more of it than the {@code kept} positions this cache has: into a new state, so that what this one holds
     * stays if the prefix cache has less. Returns the positions now held.
     */
    private int takeCachedPrefix(LanguageModel model, int[] prompt, int capacity, int kept) {
        InferenceState fresh = model.newState(Math.max(capacity, state.capacity()));
        fresh.routing(state.routing());
        int taken = fresh.takeCachedPrefix(prompt, prompt.length - 1);
        if (taken <= kept) {
            fresh.release();
            return kept;
        }
        state.release();
        state = fresh;
        length = 0;
        record(Arrays.copyOf(prompt, taken));
        return taken;
    }

    /** The routing policy of the sequence this cache holds. */
    public RoutingPolicy routing() {
        return state == null ? RoutingPolicy.TRAINED : state.routing();
    }

    /**
     * Feeds {@code tokens} at the next positions and returns the last one's logits, recording the ids once the
     * pass succeeded.
     */
    float[] feed(LanguageModel model, int[] tokens, ForwardObserver observer) {
        float[] logits;
        try {
            logits = model.forward(state, tokens, true, observer).toFloatArray();
        } catch (RuntimeException | Error e) {
            // the pass may have stopped part way (a cancelled request, a device error): go back to what is recorded
            state.rewind(length);
            throw e;
        }
        record(tokens);
        return logits;
    }

    /**
     * Feeds several sequences in one batched pass ({@link LanguageModel#forward(List, List)}):
     * {@code tokens.get(i)} at the next positions of {@code caches.get(i)}; returns each one's last-token logits and
     * records the ids once the pass succeeded (a failed pass leaves every cache as it was recorded).
     */
    static List<float[]> feedTogether(LanguageModel model, List<SequenceCache> caches,
                                                List<int[]> tokens) {
        var states = caches.stream().map(c -> c.state).toList();
        float[] logits;
        try {
            logits = model.forward(states, tokens).toFloatArray();
        } catch (RuntimeException | Error e) {
            caches.forEach(c -> c.state.rewind(c.length));
            throw e;
        }
        int vocab = model.config().vocabSize();
        var out = new ArrayList<float[]>(caches.size());
        for (int i = 0; i < caches.size(); i++) {
            caches.get(i).record(tokens.get(i));
            out.add(Arrays.copyOfRange(logits, i * vocab, (i + 1) * vocab));
        }
        return out;
    }

    private void record(int[] tokens) {
        if (length + tokens.length > ids.length) {
            ids = Arrays.copyOf(ids, Math.max(2 * ids.length, length + tokens.length));
        }
        System.arraycopy(tokens, 0, ids, length, tokens.length);
        length += tokens.length;
    }

    private void rewind(int position) {
        length = position;
        if (state != null) {
            state.rewind(position);
        }
    }

    /**
     * Whether a kept prefix gives what feeding the whole prompt would: every token's routing must depend on that
     * token alone (see {@link MoeConfig#routesEachTokenAlone}); attention over a kept cache is exact already.
     */
    private static boolean reusable(LanguageModel model) {
        return model.config().moe().map(MoeConfig::routesEachTokenAlone).orElse(true);
    }

    /** How many leading ids two sequences share. */
    public static int commonPrefix(int[] a, int[] b) {
        return commonPrefix(a, a.length, b);
    }

    /** How many leading ids the first {@code length} of {@code held} share with {@code prompt}. */
    private static int commonPrefix(int[] held, int length, int[] prompt) {
        int n = Math.min(length, prompt.length);
        int i = 0;
        while (i < n && held[i] == prompt[i]) {
            i++;
        }
        return i;
    }
}
