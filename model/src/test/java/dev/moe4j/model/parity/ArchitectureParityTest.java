package dev.moe4j.model.parity;

import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.loss.SwitchLoss;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.moe4j.core.testing.Reference.values;
import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each fixture model, loaded from the files transformers saved, computes what transformers computed: logits,
 * every hidden state and every MoE layer's router logits within 1e-4 relative (max|Δ| / max|ref|), the
 * load-balancing loss and the training loss, and the same greedy continuation through the KV cache.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ArchitectureParityTest {
    private static final double TOLERANCE = 1e-4;
    private final Map<String, TransformerModel> models = new HashMap<>();

    static List<String> cases() {
        return List.of("mixtral", "mixtral-bf16-sharded", "qwen2-moe", "qwen3-moe", "olmoe", "deepseek-v3", "gpt-oss",
                "gpt-oss-mxfp4", "deepseek-v3-fp8", "qwen3-moe-fp8");
    }

    @BeforeAll
    void load() {
        for (String name : cases()) {
            models.put(name, new HfReference(name).load(CpuBackend.INSTANCE));
        }
    }

    @AfterAll
    void close() {
        models.values().forEach(TransformerModel::close);
    }

    /** Records hidden states and router logits, copied, by index. */
    private static final class Recorder implements ForwardObserver {
        final Map<Integer, Tensor> hidden = new HashMap<>();
        final Map<Integer, Tensor> routerLogits = new HashMap<>();

        @Override
        public void onHiddenState(int index, Tensor h) {
            hidden.put(index, h.copy());
        }

        @Override
        public void onRouterLogits(int layer, Tensor logits) {
            routerLogits.put(layer, logits.copy());
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void logitsHiddenStatesAndRouterLogitsMatchTransformers(String name) {
        var ref = new HfReference(name);
        Transformer model = models.get(name).transformer();
        var recorder = new Recorder();
        ForwardPass pass = model.forward(Graph.inference(), ref.inputIds(), ref.batch(), recorder);

        assertClose(ref.values("logits"), pass.logits().value(), TOLERANCE, name + " logits");
        int layers = model.config().numLayers();
        assertEquals(layers + 1, recorder.hidden.size());
        for (int i = 0; i <= layers; i++) {
            assertClose(ref.values("hidden_states." + i), recorder.hidden.get(i), TOLERANCE, name + " hidden_states." + i);
        }
        for (int j = 0; j < pass.moeLayers().size(); j++) {
            if (ref.has("router_logits." + j)) {
                assertClose(ref.values("router_logits." + j), recorder.routerLogits.get(pass.moeLayers().get(j)),
                        TOLERANCE, name + " router_logits." + j);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void balanceLossAndTrainingLossMatchTransformers(String name) {
        var ref = new HfReference(name);
        Transformer model = models.get(name).transformer();
        Graph g = Graph.inference();
        int[] ids = ref.inputIds();
        ForwardPass pass = model.forward(g, ids, ref.batch(), null);
        double crossEntropy = model.crossEntropy(g, pass, ids, ref.batch()).value().getFloat(0);
        double balance = model.balanceLoss(pass);
        double coefficient = model.config().moe().orElseThrow().losses().stream()
                .filter(t -> t.loss().equals(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS)))
                .mapToDouble(t -> t.coefficient()).sum();
        if (ref.has("aux_loss")) {
            assertEquals(ref.scalar("aux_loss"), balance, 1e-5 * ref.scalar("aux_loss"), name + " aux_loss");
        }
        double loss = crossEntropy + coefficient * balance;
        assertEquals(ref.scalar("loss"), loss, 1e-5 * ref.scalar("loss"), name + " loss");
    }

    @ParameterizedTest
    @MethodSource("cases")
    void greedyDecodingThroughTheCacheContinuesAsTransformers(String name) {
        var ref = new HfReference(name);
        TransformerModel model = models.get(name);
        int[] prompt = ref.greedyPrompt(), expected = ref.greedyOutput();
        InferenceState state = model.newState(expected.length);
        Tensor logits = model.forward(state, prompt, true, null);
        int[] out = Arrays.copyOf(prompt, expected.length);
        for (int t = prompt.length; t < expected.length; t++) {
            out[t] = argmax(logits);
            logits = model.forward(state, new int[] {out[t]}, true, null);
        }
        assertArrayEquals(expected, out, name + " greedy continuation");
        assertEquals(expected.length, state.position());
    }

    @ParameterizedTest
    @MethodSource("cases")
    void decodingWithTheCacheGivesTheLogitsOfTheWholeSequence(String name) {
        var ref = new HfReference(name);
        TransformerModel model = models.get(name);
        int length = ref.inputIds().length / ref.batch();
        int[] sequence = Arrays.copyOf(ref.inputIds(), length);
        Tensor whole = model.transformer().forward(Graph.inference(), sequence, 1, null).logits().value();

        InferenceState state = model.newState(length);
        int vocab = model.config().vocabSize();
        // A prompt of 4 tokens, then one token at a time.
        Tensor prompt = model.forward(state, Arrays.copyOf(sequence, 4), false, null);
        assertClose(values(whole.slice(0, 4)), prompt, 1e-5, name + " prompt logits");
        for (int t = 4; t < length; t++) {
            Tensor step = model.forward(state, new int[] {sequence[t]}, true, null);
            assertEquals(vocab, step.size());
            assertClose(values(whole.slice(t, t + 1)), step, 1e-5, name + " logits at position " + t);
        }
        state.rewind(0);
        assertEquals(0, state.position());
        Tensor again = model.forward(state, sequence, true, null);
        assertClose(values(whole.slice(length - 1, length)), again, 1e-5, name + " after reset");
        assertTrue(model.forward(state.position() < state.capacity() ? state : model.newState(1),
                new int[] {sequence[0]}, true, null).size() == vocab);
    }

    @ParameterizedTest
    @MethodSource("cases")
    void eachTokensExpertsAreItsBestRouterLogitsBestFirst(String name) {
        TransformerModel model = models.get(name);
        var moe = model.config().moe().orElseThrow();
        int[] prompt = new HfReference(name).greedyPrompt();
        var logits = new HashMap<Integer, Tensor>();
        var seen = new java.util.ArrayList<int[]>();
        model.forward(model.newState(prompt.length), prompt, true, new ForwardObserver() {
            @Override
            public void onRouterLogits(int layer, Tensor l) {
                logits.put(layer, l.copy());
            }

            @Override
            public void onRouting(int layer, int position, int[] experts, float[] weights) {
                assertEquals(moe.topK(), experts.length);
                Tensor row = logits.get(layer).select(position);
                for (int j = 1; j < experts.length; j++) {
                    assertTrue(moe.selectionBias() || row.getFloat(experts[j - 1]) >= row.getFloat(experts[j]),
                            "best first");
                }
                double sum = 0;
                for (float w : weights) {
                    sum += w;
                }
                if (moe.normalizeTopK() || moe.gateOrder() == dev.moe4j.moe.router.GateOrder.TOP_K_THEN_SOFTMAX) {
                    assertEquals(moe.routedScalingFactor(), sum, 1e-5, "weights sum to the scaling factor");
                }
                seen.add(experts);
            }
        });
        assertEquals(prompt.length * model.config().numMoeLayers(), seen.size());
    }

    private static int argmax(Tensor logits) {
        int best = 0;
        for (int i = 1; i < logits.size(); i++) {
            if (logits.getFloat(i) > logits.getFloat(best)) {
                best = i;
            }
        }
        return best;
    }
}
