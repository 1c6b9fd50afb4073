package dev.moe4j.model.transformer;

import dev.moe4j.core.Tensor;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The paged KV cache: sequences whose blocks lie apart in memory (fed in turns), copies that share blocks and then
 * go separate ways, and beginnings taken from the prefix cache all give the logits of the whole sequence computed
 * at once; blocks go back to the pool when sequences end. On the fixtures of three attention kinds: Mixtral's,
 * gpt-oss's (a sliding window of 4 and sinks) and DeepSeek-V3's latent attention.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PagedKvCacheTest {
    private static final int BLOCK = KvBlocks.BLOCK;
    private final Map<String, TransformerModel> models = new HashMap<>();

    @BeforeAll
    void load() {
        for (String name : List.of("mixtral", "gpt-oss", "deepseek-v3")) {
            models.put(name, ModelLoader.load(Resources.fixture(name)));
        }
    }

    @AfterEach
    void prefixCacheOff() {
        models.values().forEach(m -> m.cachePrefixes(0));
    }

    @AfterAll
    void close() {
        models.values().forEach(TransformerModel::close);
    }

    private static int[] tokens(LanguageModel m, int count, int seed) {
        return TinyModels.tokens(count, m.config().vocabSize(), seed);
    }

    /** The logits of every position of a sequence fed at once, without a cache. */
    private static Tensor whole(TransformerModel m, int[] ids) {
        return TinyModels.logits(m.transformer(), ids, 1);
    }

    private static Tensor rows(Tensor logits, int from, int to) {
        return logits.slice(from, to);
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "gpt-oss", "deepseek-v3"})
    void sequencesFedInTurnsHoldInterleavedBlocksAndGiveTheWholeSequencesLogits(String name) {
        TransformerModel m = models.get(name);
        int[] a = tokens(m, 3 * BLOCK + 5, 1), b = tokens(m, 3 * BLOCK + 5, 2);
        int heldBefore = m.kvUsage().heldBlocks();
        InferenceState sa = m.newState(a.length), sb = m.newState(b.length);
        float[] la = new float[0], lb = new float[0];
        // a chunk that ends inside a block, then one token at a time: each sequence takes its next block after the
        // other took one, so their blocks alternate in the pool's slabs
        int first = BLOCK + 3;
        la = concat(la, m.forward(sa, Arrays.copyOf(a, first), false, null).toFloatArray());
        lb = concat(lb, m.forward(sb, Arrays.copyOf(b, first), false, null).toFloatArray());
        for (int t = first; t < a.length; t++) {
            var both = m.forward(List.of(sa, sb), List.of(new int[] {a[t]}, new int[] {b[t]})).toFloatArray();
            int vocab = m.config().vocabSize();
            la = concat(la, Arrays.copyOfRange(both, 0, vocab));
            lb = concat(lb, Arrays.copyOfRange(both, vocab, 2 * vocab));
        }
        assertClose(TinyModels.values(whole(m, a)), la, 1e-5, name + " a");
        assertClose(TinyModels.values(whole(m, b)), lb, 1e-5, name + " b");
        sa.release();
        sb.release();
        assertEquals(heldBefore, m.kvUsage().heldBlocks(), "blocks given back");
    }

    @Test
    void slabsGoBackOnceNoBlockOfThemIsInUse() {
        try (TransformerModel m = ModelLoader.load(Resources.fixture("mixtral"))) {
            InferenceState s = m.newState(40);
            m.forward(s, tokens(m, 40, 17), true, null);
            assertEquals(3, m.kvUsage().heldBlocks());
            assertTrue(m.kvUsage().allocatedBytes() >= 3 * BLOCK * m.kvBytesPerPosition());
            s.release();
            assertEquals(0, m.kvUsage().heldBlocks());
            assertEquals(0, m.kvUsage().allocatedBytes());
        }
    }

    @Test
    void aLongPromptGoesThroughTheBlockedAttentionOverScatteredBlocks() {
        TransformerModel m = models.get("mixtral");
        int[] ids = tokens(m, 4 * BLOCK, 3);
        // a short sequence first takes the pool's first blocks, so the long one's lie in several slabs
        InferenceState other = m.newState(8);
        m.forward(other, tokens(m, 8, 4), true, null);
        InferenceState s = m.newState(ids.length);
        float[] first = m.forward(s, Arrays.copyOf(ids, BLOCK + 1), false, null).toFloatArray();
        InferenceState extra = m.newState(BLOCK);
        m.forward(extra, tokens(m, BLOCK, 5), true, null);
        float[] rest = m.forward(s, Arrays.copyOfRange(ids, BLOCK + 1, ids.length), false, null).toFloatArray();
        assertClose(TinyModels.values(whole(m, ids)), concat(first, rest), 1e-5, "prefill in two chunks");
        List.of(other, s, extra).forEach(InferenceState::release);
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "gpt-oss", "deepseek-v3"})
    void aCopySharesBlocksAndNeitherSequenceSeesTheOthersTokens(String name) {
        TransformerModel m = models.get(name);
        int[] prompt = tokens(m, BLOCK + 7, 6), left = tokens(m, 12, 7), right = tokens(m, 12, 8);
        int heldAtStart = m.kvUsage().heldBlocks();
        InferenceState parent = m.newState(prompt.length + 13);
        m.forward(parent, prompt, true, null);
        int heldBefore = m.kvUsage().heldBlocks();
        InferenceState child = parent.grown(prompt.length + 13);
        assertEquals(heldBefore, m.kvUsage().heldBlocks(), "the copy holds the parent's blocks, no new ones");
        // both write into the shared half-full block: each gets its own copy of it first
        float[] l = m.forward(parent, left, false, null).toFloatArray();
        float[] r = m.forward(child, right, false, null).toFloatArray();
        Tensor wl = whole(m, concat(prompt, left)), wr = whole(m, concat(prompt, right));
        assertClose(TinyModels.values(rows(wl, prompt.length, prompt.length + 12)), l, 1e-5, name + " parent");
        assertClose(TinyModels.values(rows(wr, prompt.length, prompt.length + 12)), r, 1e-5, name + " copy");
        // rewound into the shared first block, the copy writes its own: the parent's is untouched
        child.rewind(3);
        m.forward(child, tokens(m, 5, 9), true, null);
        float[] again = m.forward(parent, new int[] {1}, true, null).toFloatArray();
        Tensor wa = whole(m, concat(prompt, left, new int[] {1}));
        assertClose(TinyModels.values(rows(wa, wa.rows() - 1, wa.rows())), again, 1e-5, name + " parent after");
        parent.release();
        child.release();
        assertEquals(heldAtStart, m.kvUsage().heldBlocks());
    }

    @ParameterizedTest
    @ValueSource(strings = {"mixtral", "gpt-oss", "deepseek-v3"})
    void aSequenceTakesTheBeginningAnotherComputedFromThePrefixCache(String name) {
        TransformerModel m = models.get(name);
        assertTrue(m.cachePrefixes(1 << 20), "this model routes each token alone");
        int[] system = tokens(m, 2 * BLOCK + 9, 10);
        int[] first = concat(system, tokens(m, 6, 11)), second = concat(system, tokens(m, 6, 12));
        InferenceState s1 = m.newState(first.length);
        m.forward(s1, first, true, null);
        int held = m.kvUsage().heldBlocks();
        s1.release();
        assertEquals(2, m.kvUsage().cachedBlocks(), "its two full blocks stay cached");
        assertTrue(m.kvUsage().heldBlocks() <= held - 3, "its three blocks are no longer held");

        InferenceState s2 = m.newState(second.length);
        int taken = s2.takeCachedPrefix(second, second.length - 1);
        assertEquals(2 * BLOCK, taken, "whole blocks the prompts share");
        float[] rest = m.forward(s2, Arrays.copyOfRange(second, taken, second.length), false, null).toFloatArray();
        Tensor w = whole(m, second);
        assertClose(TinyModels.values(rows(w, taken, second.length)), rest, 1e-5, name + " after the cached prefix");
        s2.release();
    }

    @Test
    void aPrefixIsCachedPerRoutingPolicy() {
        TransformerModel m = models.get("mixtral");
        m.cachePrefixes(1 << 20);
        int[] ids = tokens(m, 2 * BLOCK + 1, 13);
        InferenceState trained = m.newState(ids.length);
        m.forward(trained, ids, true, null);
        var oneExpert = RoutingPolicy.experts(1);
        InferenceState other = m.newState(ids.length);
        other.routing(oneExpert);
        assertEquals(0, other.takeCachedPrefix(ids, ids.length - 1), "keys computed with two experts a token");
        m.forward(other, ids, true, null);
        InferenceState third = m.newState(ids.length);
        third.routing(oneExpert);
        assertEquals(2 * BLOCK, third.takeCachedPrefix(ids, ids.length - 1));
        List.of(trained, other, third).forEach(InferenceState::release);
    }

    @Test
    void aPolicyWhoseTokensCompeteNeitherCachesNorTakesPrefixes() {
        TransformerModel m = models.get("mixtral");
        m.cachePrefixes(1 << 20);
        int[] ids = tokens(m, 2 * BLOCK + 1, 14);
        var capped = RoutingPolicy.builder(RoutingPolicy.Naming.flags()).capacityFactor(1.0).build();
        InferenceState s = m.newState(ids.length);
        s.routing(capped);
        m.forward(s, ids, true, null);
        s.release();
        assertEquals(0, m.kvUsage().cachedBlocks());
    }

    @Test
    void thePrefixCacheKeepsAtMostItsBudgetDroppingTheLeastRecentlyUsed() {
        TransformerModel m = models.get("mixtral");
        long perBlock = m.kvBytesPerPosition() * BLOCK;
        m.cachePrefixes(3 * perBlock);
        int[] a = tokens(m, 2 * BLOCK + 1, 15), b = tokens(m, 2 * BLOCK + 1, 16);
        for (int[] ids : List.of(a, b)) {
            InferenceState s = m.newState(ids.length);
            m.forward(s, ids, true, null);
            s.release();
        }
        assertEquals(3, m.kvUsage().cachedBlocks());
        InferenceState probe = m.newState(a.length);
        assertEquals(0, probe.takeCachedPrefix(a, a.length - 1), "a's first block went first");
        InferenceState probeB = m.newState(b.length);
        assertEquals(2 * BLOCK, probeB.takeCachedPrefix(b, b.length - 1));
        probe.release();
        probeB.release();
        m.cachePrefixes(0);
        assertEquals(0, m.kvUsage().cachedBlocks());
    }

    @Test
    void aModelWhoseRouterMakesTokensCompeteCachesNoPrefixes() {
        // Soft MoE mixes every token of a pass into each slot
        var moe = dev.moe4j.moe.MoeConfig.builder(16, 12, 4, 2).router(dev.moe4j.moe.RouterKind.SOFT)
                .slotsPerExpert(2).build();
        var config = dev.moe4j.model.config.ModelConfig.builder().vocabSize(40).hiddenSize(16)
                .attention(dev.moe4j.model.config.AttentionConfig.Standard.of(4, 2, 4)).moeLayers(2).moe(moe)
                .maxPositions(64).build();
        try (var m = new TransformerModel(new Transformer(config, new InitialWeights(0.3, 7)), null)) {
            assertFalse(m.cachePrefixes(1 << 20));
        }
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }
}
