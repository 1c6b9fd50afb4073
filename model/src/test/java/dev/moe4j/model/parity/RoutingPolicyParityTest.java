package dev.moe4j.model.parity;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.gguf.GgufConverter;
import dev.moe4j.model.gguf.GgufFileType;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Routing policies on the fixture checkpoints of every family (and on GGUF files converted from them): the policies
 * that equal training give the trained logits exactly, k = all experts is the dense MoE, a policy that changes the
 * routing changes the logits, and sequences of different policies decoded together compute what each does alone.
 */
class RoutingPolicyParityTest {
    static List<String> families() {
        return List.of("mixtral", "qwen2-moe", "qwen3-moe", "olmoe", "deepseek-v3", "gpt-oss");
    }

    private static RoutingPolicy policy(String spec) {
        return RoutingPolicy.parse(spec, "--policy");
    }

    /** Logits of the reference inputs, whole sequences through one pass. */
    private static float[] logits(TransformerModel model, int[] ids, int batch, RoutingPolicy policy) {
        return model.transformer().forward(Graph.inference(), ids, batch, null, policy).logits().value().toFloatArray();
    }

    /** Logits of one sequence fed in two pieces against a KV cache routed by {@code policy}. */
    private static float[] cached(LanguageModel model, int[] ids, RoutingPolicy policy) {
        InferenceState state = model.newState(ids.length);
        state.routing(policy);
        int half = ids.length / 2;
        float[] a = model.forward(state, Arrays.copyOf(ids, half), false, null).toFloatArray();
        float[] b = model.forward(state, Arrays.copyOfRange(ids, half, ids.length), false, null).toFloatArray();
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @ParameterizedTest
    @MethodSource("families")
    void policiesEqualToTrainingGiveTheTrainedLogitsExactly(String name) {
        var ref = new HfReference(name);
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE)) {
            MoeConfig moe = model.config().moe().orElseThrow();
            int k = moe.topK();
            int[] ids = ref.inputIds();
            float[] trained = logits(model, ids, ref.batch(), RoutingPolicy.TRAINED);
            int[] one = Arrays.copyOf(ids, ids.length / ref.batch());
            float[] trainedCached = cached(model, one, RoutingPolicy.TRAINED);
            int lastExpert = moe.experts() - 1;
            int nonMoeLayer = -1;
            for (int l = 0; l < model.config().numLayers(); l++) {
                if (!model.config().layers().get(l).moe()) {
                    nonMoeLayer = l;
                }
            }
            var specs = new ArrayList<>(List.of("k=" + k, "top-p=1 max=" + k, "top-p=1", "trained"));
            for (String spec : specs) {
                RoutingPolicy p = policy(spec);
                model.checkRouting(p, RoutingPolicy.Naming.flags());
                assertArrayEquals(trained, logits(model, ids, ref.batch(), p), name + ": " + spec);
                assertArrayEquals(trainedCached, cached(model, one, p), name + ": " + spec + " through a KV cache");
            }
            // masks and forced experts of a dense layer are refused; of every layer but none here: not expressible
            if (nonMoeLayer >= 0) {
                int layer = nonMoeLayer;
                var e = assertThrows(BadInputException.class,
                        () -> model.checkRouting(policy("mask=" + layer + ":" + lastExpert), RoutingPolicy.Naming.flags()));
                assertTrue(e.getMessage().contains("is not an MoE layer"), e.getMessage());
            }
        }
    }

    @ParameterizedTest
    @MethodSource("families")
    void fewerExpertsAndMasksChangeTheLogits(String name) {
        var ref = new HfReference(name);
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE)) {
            int[] ids = ref.inputIds();
            float[] trained = logits(model, ids, ref.batch(), RoutingPolicy.TRAINED);
            int moeLayer = model.transformer().moeLayerIndices().getFirst();
            for (String spec : List.of("k=1", "top-p=0.1", "floor=0.3", "mask=*:0,1", "force=" + moeLayer + ":2")) {
                float[] changed = logits(model, ids, ref.batch(), policy(spec));
                assertFalse(Arrays.equals(trained, changed), name + ": " + spec + " changed nothing");
                for (float v : changed) {
                    assertTrue(Float.isFinite(v), name + ": " + spec);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen2-moe", "qwen3-moe", "olmoe", "gpt-oss"})
    void everyExpertPerTokenIsTheDenseMoe(String name) {
        var ref = new HfReference(name);
        ModelConfig config = ref.config();
        MoeConfig moe = config.moe().orElseThrow();
        ModelConfig dense = config.toBuilder().moe(moe.toBuilder().router(RouterKind.DENSE).build()).build();
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE);
             TransformerModel reference = ModelLoader.load(ref.folder, dense, CpuBackend.INSTANCE, WeightMemory.AUTO)) {
            int[] ids = ref.inputIds();
            float[] all = logits(model, ids, ref.batch(), RoutingPolicy.experts(moe.experts()));
            float[] expected = reference.transformer().forward(Graph.inference(), ids, ref.batch(), null).logits().value()
                    .toFloatArray();
            assertArrayEquals(expected, all, name);
            assertFalse(Arrays.equals(expected, logits(model, ids, ref.batch(), RoutingPolicy.TRAINED)));
        }
    }

    @Test
    void groupLimitedRoutingTakesAtMostItsGroupsExperts() {
        var ref = new HfReference("deepseek-v3");
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE)) {
            // 16 experts in 4 groups, a token within its best 2: 8 eligible
            var e = assertThrows(BadInputException.class,
                    () -> model.checkRouting(RoutingPolicy.experts(9), RoutingPolicy.Naming.flags()));
            assertEquals("--experts-per-token 9: a token chooses within its best 2 groups of 4 experts, at most 8"
                    + " experts", e.getMessage());
            model.checkRouting(RoutingPolicy.experts(8), RoutingPolicy.Naming.flags());
            float[] eight = logits(model, ref.inputIds(), ref.batch(), RoutingPolicy.experts(8));
            for (float v : eight) {
                assertTrue(Float.isFinite(v));
            }
        }
    }

    @Test
    void sequencesOfDifferentPoliciesDecodedTogetherComputeWhatEachDoesAlone() {
        var ref = new HfReference("mixtral");
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE)) {
            int[] ids = ref.inputIds();
            int length = ids.length / ref.batch();
            List<RoutingPolicy> policies = List.of(RoutingPolicy.TRAINED, RoutingPolicy.experts(1),
                    policy("top-p=0.5 max=4"), policy("mask=*:0 force=1:3"));
            List<int[]> prompts = List.of(Arrays.copyOf(ids, 5), Arrays.copyOfRange(ids, length, length + 3),
                    Arrays.copyOf(ids, 7), Arrays.copyOfRange(ids, length, length + 6));
            var alone = new ArrayList<float[]>();
            for (int i = 0; i < policies.size(); i++) {
                InferenceState s = model.newState(16);
                s.routing(policies.get(i));
                model.forward(s, prompts.get(i), true, null);
                alone.add(model.forward(s, new int[] {3}, true, null).toFloatArray());
            }
            var states = new ArrayList<InferenceState>();
            for (int i = 0; i < policies.size(); i++) {
                InferenceState s = model.newState(16);
                s.routing(policies.get(i));
                states.add(s);
            }
            model.forward(states, prompts);
            Tensor together = model.forward(states, List.of(new int[] {3}, new int[] {3}, new int[] {3}, new int[] {3}));
            int vocab = model.config().vocabSize();
            for (int i = 0; i < policies.size(); i++) {
                float[] row = Arrays.copyOfRange(together.toFloatArray(), i * vocab, (i + 1) * vocab);
                double diff = 0, max = 0;
                for (int v = 0; v < vocab; v++) {
                    diff = Math.max(diff, Math.abs(row[v] - alone.get(i)[v]));
                    max = Math.max(max, Math.abs(alone.get(i)[v]));
                }
                assertTrue(diff <= 1e-5 * max, policies.get(i) + ": batched differs by " + diff / max);
            }
        }
    }

    @Test
    void aStateKeepsItsRoutingUntilRewoundToTheStart() {
        var ref = new HfReference("mixtral");
        try (TransformerModel model = ref.load(CpuBackend.INSTANCE)) {
            InferenceState s = model.newState(8);
            s.routing(RoutingPolicy.experts(1));
            model.forward(s, new int[] {1, 2}, true, null);
            assertThrows(IllegalStateException.class, () -> s.routing(RoutingPolicy.TRAINED));
            s.rewind(0);
            s.routing(RoutingPolicy.TRAINED);
            assertEquals(RoutingPolicy.TRAINED, s.routing());
            s.routing(RoutingPolicy.experts(3));
            model.forward(s, new int[] {1, 2}, true, null);
            assertEquals(RoutingPolicy.experts(3), s.grown(16).routing(), "a grown copy goes on with its routing");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "qwen3-moe"})
    void ggufModelsFollowPoliciesAsTheirFolders(String name, @TempDir Path dir) {
        Path folder = new HfReference(name).folder;
        Path gguf = dir.resolve(name + ".gguf");
        GgufConverter.convert(folder, gguf, Optional.of(GgufFileType.F32));
        try (LanguageModel a = ModelLoader.load(folder, CpuBackend.INSTANCE, WeightMemory.MAPPED);
             LanguageModel b = ModelLoader.load(gguf, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            int[] ids = new HfReference(name).greedyPrompt();
            for (String spec : List.of("k=1", "top-p=0.15 max=4", "mask=*:1")) {
                RoutingPolicy p = policy(spec);
                b.checkRouting(p, RoutingPolicy.Naming.flags());
                float[] x = cached(a, ids, p), y = cached(b, ids, p);
                double diff = 0, max = 0;
                for (int i = 0; i < x.length; i++) {
                    diff = Math.max(diff, Math.abs(x[i] - y[i]));
                    max = Math.max(max, Math.abs(x[i]));
                }
                assertTrue(diff <= 1e-6 * max, name + " " + spec + ": GGUF differs by " + diff / max);
                assertFalse(Arrays.equals(cached(a, ids, RoutingPolicy.TRAINED), x), spec + " changed nothing");
            }
        }
    }
}
