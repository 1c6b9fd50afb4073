package dev.moe4j.model.transformer;

import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CapturedWork;
import dev.moe4j.core.backend.Device;
import dev.moe4j.core.backend.MemoryScope;

import java.util.ArrayList;
import java.util.List;

/**
 * Decoding steps (one new token per sequence) on a device that records work ({@link Device#captures}, a GPU): a
 * step reads its token ids and positions from device memory, so the step of one set of caches is recorded once and
 * replayed at every later position, the host writing the ids and positions and launching one graph instead of every
 * operation of every layer. The first step of a set runs directly (it makes what later steps reuse and a recording
 * cannot: kernel modules, rotary and expert tables); the second is recorded, then replayed. A step the device will
 * not record (one that copies to or from the host: routing on the host, a selection bias uploaded each step) keeps
 * running directly, reading the same device inputs, which compute what the launches of {@link Transformer#forward}
 * compute.
 */
final class DecodingSteps {
    /** Recordings kept, most recently used last: each holds its own scratch memory on the device. */
    private static final int KEPT = 4;
    private final List<Step> steps = new ArrayList<>();

    /** One set of caches' recording and inputs: ids then positions, I32 [2 · caches]. */
    private static final class Step implements AutoCloseable {
        final List<KvCache> caches;
        final long[] runs;
        final Tensor inputs;
        CapturedWork work;
        Tensor logits;
        int ran;
        boolean refused;

        Step(List<KvCache> caches, long[] runs, Backend backend) {
            this.caches = List.copyOf(caches);
            this.runs = runs;
            this.inputs = MemoryScope.persistent(() -> backend.empty(DType.I32, 2 * caches.size()));
        }

        boolean feeds(List<KvCache> others, long[] otherRuns) {
            if (others.size() != caches.size()) {
                return false;
            }
            for (int i = 0; i < caches.size(); i++) {
                if (others.get(i) != caches.get(i)) {
                    return false;
                }
            }
            return java.util.Arrays.equals(runs, otherRuns);
        }

        @Override
        public void close() {
            if (work != null) {
                work.close();
            }
            inputs.device().free(inputs);
        }
    }

    /**
     * The F32 logits [caches, vocab] on the host of one token per cache, each cache advanced; null (nothing done) where
     * a cache's blocks are not one run of memory.
     */
    synchronized Tensor decode(Transformer model, List<KvCache> caches, int[] tokens) {
        int n = caches.size();
        long[] runs = new long[n];
        for (int i = 0; i < n; i++) {
            Tensor[] run = caches.get(i).run(0);
            if (run == null) {
                return null;
            }
            runs[i] = run[0].address();
        }
        Step step = find(caches, runs);
        if (step == null) {
            step = new Step(caches, runs, Backend.of(model.embeddingTable()));
            steps.add(step);
            if (steps.size() > KEPT) {
                steps.removeFirst().close();
            }
        }
        int[] values = new int[2 * n];
        for (int i = 0; i < n; i++) {
            values[i] = tokens[i];
            values[n + i] = caches.get(i).position();
            caches.get(i).prepareWrite(1);
        }
        Tensor host = Tensor.zeros(DType.I32, 2 * n);
        for (int i = 0; i < 2 * n; i++) {
            host.setLong(i, values[i]);
        }
        Backend.of(step.inputs).copy(step.inputs, host);
        Step s = step;
        if (s.work == null && s.ran > 0 && !s.refused) {
            s.work = model.device().capture(() -> s.logits = run(model, s, tokens));
            s.refused = s.work == null;
        }
        Tensor logits;
        if (s.work != null) {
            s.work.replay();
            logits = s.logits.toHost();
        } else {
            try (var scope = MemoryScope.open()) {
                logits = run(model, s, tokens).toHost();
            }
        }
        s.ran++;
        for (int i = 0; i < n; i++) {
            caches.get(i).advance(new int[] {tokens[i]});
        }
        return logits;
    }

    private static Tensor run(Transformer model, Step s, int[] tokens) {
        int n = s.caches.size();
        int[] ones = new int[n];
        java.util.Arrays.fill(ones, 1);
        Batch batch = Batch.cached(s.caches, ones).readingFrom(s.inputs.slice(0, n), s.inputs.slice(n, 2 * n));
        return model.run(Graph.inference(), tokens, batch, true, null).logits().value();
    }

    private Step find(List<KvCache> caches, long[] runs) {
        for (int i = 0; i < steps.size(); i++) {
            Step s = steps.get(i);
            if (s.caches.getFirst() == caches.getFirst()) {
                if (s.feeds(caches, runs)) {
                    steps.remove(i);
                    steps.add(s);
                    return s;
                }
                // the cache's blocks moved (released and taken again) or the set changed: record anew
                steps.remove(i).close();
                return null;
            }
        }
        return null;
    }

    synchronized int recorded() {
        return (int) steps.stream().filter(s -> s.work != null).count();
    }

    /** Releases every recording and its memory. */
    synchronized void close() {
        steps.forEach(Step::close);
        steps.clear();
    }
}
