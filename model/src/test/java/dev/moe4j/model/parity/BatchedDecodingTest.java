package dev.moe4j.model.parity;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.TransformerModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Sequences decoded together, one batched step for all (each at its own position, prompts of different lengths fed
 * in the same step as other sequences' decoded tokens), compute what each computes alone: the logits of every step
 * within float rounding of the one-by-one run, the same greedy tokens, and transformers' greedy continuation of
 * the fixture's prompt.
 */
class BatchedDecodingTest {
    static List<String> cases() {
        return ArchitectureParityTest.cases();
    }

    /** The prompts: the fixture's greedy prompt and prefixes of the reference inputs, of different lengths. */
    private static List<int[]> prompts(HfReference ref) {
        int[] ids = ref.inputIds();
        int length = ids.length / ref.batch();
        return List.of(ref.greedyPrompt(), Arrays.copyOfRange(ids, length, length + 7),
                Arrays.copyOf(ids, 2), Arrays.copyOfRange(ids, length, length + 1));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void sequencesDecodedTogetherContinueAsEachAlone(String name) {
        var ref = new HfReference(name);
        int steps = 12;
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE)) {
            List<int[]> prompts = prompts(ref);
            int n = prompts.size(), vocab = model.config().vocabSize();
            // one by one
            var alone = new ArrayList<int[]>();
            var aloneLogits = new ArrayList<float[][]>();
            for (int[] prompt : prompts) {
                InferenceState state = model.newState(prompt.length + steps);
                int[] out = new int[steps];
                float[][] logits = new float[steps][];
                Tensor l = model.forward(state, prompt, true, null);
                for (int t = 0; t < steps; t++) {
                    logits[t] = l.toFloatArray();
                    out[t] = argmax(logits[t]);
                    l = model.forward(state, new int[] {out[t]}, true, null);
                }
                alone.add(out);
                aloneLogits.add(logits);
            }
            // together: sequence i joins at step i (its prompt fed beside the others' decoded tokens)
            var states = new ArrayList<InferenceState>();
            int[][] together = new int[n][steps];
            int[] produced = new int[n];
            double worst = 0;
            for (int step = 0; produced[n - 1] < steps; step++) {
                var active = new ArrayList<InferenceState>();
                var feed = new ArrayList<int[]>();
                var who = new ArrayList<Integer>();
                for (int i = 0; i < n; i++) {
                    if (i == step && i >= states.size()) {
                        states.add(model.newState(prompts.get(i).length + steps));
                        active.add(states.get(i));
                        feed.add(prompts.get(i));
                        who.add(i);
                    } else if (i < states.size() && produced[i] < steps) {
                        active.add(states.get(i));
                        feed.add(new int[] {together[i][produced[i] - 1]});
                        who.add(i);
                    }
                }
                Tensor logits = model.forward(active, feed);
                assertEquals(active.size(), logits.rows());
                for (int j = 0; j < who.size(); j++) {
                    int i = who.get(j);
                    float[] row = Arrays.copyOfRange(logits.toFloatArray(), j * vocab, (j + 1) * vocab);
                    worst = Math.max(worst, relative(aloneLogits.get(i)[produced[i]], row));
                    together[i][produced[i]++] = argmax(row);
                }
            }
            for (int i = 0; i < n; i++) {
                assertArrayEquals(alone.get(i), together[i], name + " sequence " + i);
            }
            assertTrue(worst < 1e-5, name + ": batched logits " + worst + " from the one-by-one run's");
            int[] expected = ref.greedyOutput(), prompt = ref.greedyPrompt();
            assertArrayEquals(Arrays.copyOfRange(expected, prompt.length, expected.length), together[0], name
                    + ": transformers' greedy continuation");
        }
    }

    private static double relative(float[] reference, float[] value) {
        double diff = 0, max = 0;
        for (int i = 0; i < reference.length; i++) {
            diff = Math.max(diff, Math.abs(reference[i] - value[i]));
            max = Math.max(max, Math.abs(reference[i]));
        }
        return diff / max;
    }

    private static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
