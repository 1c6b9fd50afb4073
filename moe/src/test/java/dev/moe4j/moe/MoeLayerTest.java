package dev.moe4j.moe;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.core.testing.Reference;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.expert.ExpertWeights;
import dev.moe4j.moe.expert.SeparateExpertWeights;
import dev.moe4j.moe.expert.StackedExpertWeights;
import dev.moe4j.moe.loss.BiasBalancer;
import dev.moe4j.moe.loss.SwitchLoss;
import dev.moe4j.moe.router.Scoring;
import dev.moe4j.moe.router.TopKRouter;
import dev.moe4j.moe.testing.FiniteDifferences;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.*;

class MoeLayerTest {
    private static final int H = 16, I = 12;

    @Test
    void aRouterWithOneExpertIsTheDenseFfn() {
        MoeLayer layer = MoeLayer.initialize(MoeConfig.builder(H, I, 1, 1).build());
        Tensor x = FiniteDifferences.gaussian(new Random(1), 1.0, 7, H);
        var stacked = (StackedExpertWeights) expertsOf(layer);
        double[] gateUp = Reference.matmulXWt(FiniteDifferences.toDouble(x), FiniteDifferences.toDouble(stacked.gateUp(0)), 7, H, 2 * I);
        double[] expected = Reference.matmulXWt(Reference.glu(GluParams.swiglu(), gateUp, 7, I),
                FiniteDifferences.toDouble(stacked.down(0)), 7, I, H);
        double err = FiniteDifferences.relativeError(expected, layer.forward(x, Mode.INFERENCE).output().toFloatArray());
        assertTrue(err < 1e-5, "relative error " + err);
    }

    @Test
    void checkpointLayoutWithSeparateTensorsGivesTheStackedLayersOutput() {
        MoeConfig c = MoeConfig.builder(H, I, 6, 2).normalizeTopK(true).build();
        MoeLayer stacked = MoeLayer.initialize(c);
        MoeLayer separate = MoeLayer.of(c, stacked.router(), separateViews(expertsOf(stacked), DType.F32), null, null);
        Tensor x = FiniteDifferences.gaussian(new Random(2), 1.0, 9, H);
        assertArrayEquals(stacked.forward(x, Mode.INFERENCE).output().toFloatArray(),
                separate.forward(x, Mode.INFERENCE).output().toFloatArray(), 1e-6f);
    }

    @Test
    void bf16CheckpointWeightsAreWidenedInTheKernels() {
        MoeConfig c = MoeConfig.builder(H, I, 4, 2).build();
        MoeLayer f32 = MoeLayer.initialize(c);
        ExpertWeights bf16 = separateViews(expertsOf(f32), DType.BF16);
        // The F32 reference layer holds the same bf16-rounded values.
        ExpertWeights rounded = separateViews(bf16, DType.F32);
        Tensor x = FiniteDifferences.gaussian(new Random(3), 1.0, 5, H);
        float[] a = MoeLayer.of(c, f32.router(), bf16, null, null).forward(x, Mode.INFERENCE).output().toFloatArray();
        float[] b = MoeLayer.of(c, f32.router(), rounded, null, null).forward(x, Mode.INFERENCE).output().toFloatArray();
        assertArrayEquals(b, a, 1e-5f);
    }

    @Test
    void decodingOneTokenReadsOnlyItsChosenExpertsWeights() {
        MoeConfig c = MoeConfig.builder(H, I, 8, 2).build();
        MoeLayer trained = MoeLayer.initialize(c);
        var recording = new RecordingWeights(separateViews(expertsOf(trained), DType.F32));
        MoeLayer layer = MoeLayer.of(c, trained.router(), recording, null, null);
        recording.touched.clear(); // construction validates shapes; only the forward pass must stay on its experts
        MoeResult r = layer.forward(FiniteDifferences.gaussian(new Random(4), 1.0, 1, H), Mode.INFERENCE);
        Set<Integer> chosen = new TreeSet<>();
        for (int e = 0; e < 8; e++) {
            if (r.stats().tokensPerExpert()[e] > 0) {
                chosen.add(e);
            }
        }
        assertEquals(2, chosen.size());
        assertEquals(chosen, recording.touched);
    }

    @Test
    void aPolicyOfFewerExpertsReadsOnlyTheExpertsItKeeps() {
        MoeConfig c = MoeConfig.builder(H, I, 8, 2).normalizeTopK(true).build();
        MoeLayer trained = MoeLayer.initialize(c);
        var recording = new RecordingWeights(separateViews(expertsOf(trained), DType.F32));
        MoeLayer layer = MoeLayer.of(c, trained.router(), recording, null, null);
        Tensor x = FiniteDifferences.gaussian(new Random(4), 1.0, 1, H);
        int first = layer.forward(x, Mode.INFERENCE).routing().choices()[0];
        recording.touched.clear();
        var one = dev.moe4j.moe.router.PolicyRows.of(0, dev.moe4j.moe.router.RoutingPolicy.experts(1), 1);
        MoeResult r = layer.forward(x, 1, Mode.INFERENCE, one);
        assertEquals(Set.of(first), recording.touched);
        // one expert renormalised to weight 1: the output is that expert's FFN alone
        var stacked = (StackedExpertWeights) expertsOf(trained);
        double[] gateUp = Reference.matmulXWt(FiniteDifferences.toDouble(x), FiniteDifferences.toDouble(stacked.gateUp(first)), 1, H, 2 * I);
        double[] expected = Reference.matmulXWt(Reference.glu(GluParams.swiglu(), gateUp, 1, I),
                FiniteDifferences.toDouble(stacked.down(first)), 1, I, H);
        double err = FiniteDifferences.relativeError(expected, r.output().toFloatArray());
        assertTrue(err < 1e-5, "relative error " + err);
    }

    @Test
    void inferenceKeepsNothingForBackward() {
        MoeLayer layer = MoeLayer.initialize(MoeConfig.builder(H, I, 4, 2).build());
        MoeResult r = layer.forward(FiniteDifferences.gaussian(new Random(5), 1.0, 3, H), Mode.INFERENCE);
        assertNull(r.context());
        assertThrows(IllegalStateException.class, () -> layer.backward(r.context(), Tensor.zeros(3, H)));
    }

    @Test
    void trainingWithNoiseIsDeterministicForASeed() {
        MoeConfig c = MoeConfig.builder(H, I, 4, 2).noise(dev.moe4j.moe.router.Noise.jitter(0.3)).seed(42).build();
        Tensor x = FiniteDifferences.gaussian(new Random(6), 1.0, 8, H);
        float[] a = MoeLayer.initialize(c).forward(x, Mode.TRAINING).output().toFloatArray();
        float[] b = MoeLayer.initialize(c).forward(x, Mode.TRAINING).output().toFloatArray();
        assertArrayEquals(a, b);
    }

    @Test
    void expertChoiceDecodeOutputOfATokenDoesNotDependOnLaterTokens() {
        MoeConfig c = MoeConfig.builder(H, I, 4, 1).router(RouterKind.EXPERT_CHOICE)
                .capacity(Capacity.factor(2.0, Capacity.Rounding.CEIL, 1)).thresholdMomentum(0.3).build();
        MoeLayer layer = MoeLayer.initialize(c);
        var random = new Random(7);
        for (int step = 0; step < 10; step++) {
            layer.forward(FiniteDifferences.gaussian(random, 1.0, 24, H), Mode.TRAINING);
        }
        Tensor sequence = FiniteDifferences.gaussian(random, 1.0, 10, H);
        float[] full = layer.forward(sequence, Mode.INFERENCE).output().toFloatArray();
        for (int t = 0; t < 10; t++) {
            float[] prefix = layer.forward(sequence.slice(0, t + 1), Mode.INFERENCE).output().toFloatArray();
            assertArrayEquals(java.util.Arrays.copyOfRange(full, t * H, t * H + H),
                    java.util.Arrays.copyOfRange(prefix, t * H, t * H + H), 1e-6f, "token " + t);
        }
    }

    @Test
    void routesEachTokenAloneHoldsExactlyWhenFeedingInPiecesRoutesAsOnePass() {
        Tensor x = FiniteDifferences.gaussian(new Random(8), 1.0, 12, H);
        var alone = List.of(MoeConfig.builder(H, I, 4, 2).build(),
                MoeConfig.builder(H, I, 4, 1).router(RouterKind.EXPERT_CHOICE)
                        .capacity(Capacity.factor(1.0, Capacity.Rounding.CEIL, 1)).build());
        var together = List.of(MoeConfig.builder(H, I, 4, 2).capacity(Capacity.fixed(2)).build(),
                MoeConfig.builder(H, I, 4, 1).router(RouterKind.EXPERT_CHOICE)
                        .capacity(Capacity.factor(1.0, Capacity.Rounding.CEIL, 1))
                        .expertChoiceDecode(dev.moe4j.moe.router.ExpertChoiceDecode.BATCH_TOP_C).build(),
                MoeConfig.builder(H, I, 4, 1).router(RouterKind.SOFT).build());
        for (MoeConfig c : alone) {
            assertTrue(c.routesEachTokenAlone(), c.router().toString());
            MoeLayer layer = MoeLayer.initialize(c);
            // expert choice routes by thresholds that a training pass estimates
            layer.forward(FiniteDifferences.gaussian(new Random(9), 1.0, 24, H), Mode.TRAINING);
            float[][] outputs = wholeAndInPieces(layer, x);
            assertArrayEquals(outputs[0], outputs[1], 1e-6f, c.router().toString());
        }
        for (MoeConfig c : together) {
            assertFalse(c.routesEachTokenAlone(), c.router().toString());
            float[][] outputs = wholeAndInPieces(MoeLayer.initialize(c), x);
            assertFalse(java.util.Arrays.equals(outputs[0], outputs[1]), c.router() + " depends on the batch");
        }
    }

    /** The layer's output over x in one pass, and over its first 8 rows and the rest in two passes. */
    private static float[][] wholeAndInPieces(MoeLayer layer, Tensor x) {
        float[] whole = layer.forward(x, Mode.INFERENCE).output().toFloatArray();
        float[] head = layer.forward(x.slice(0, 8), Mode.INFERENCE).output().toFloatArray();
        float[] tail = layer.forward(x.slice(8, x.rows()), Mode.INFERENCE).output().toFloatArray();
        float[] pieces = java.util.Arrays.copyOf(head, whole.length);
        System.arraycopy(tail, 0, pieces, head.length, tail.length);
        return new float[][] {whole, pieces};
    }

    @Test
    void biasBalancerEvensOutASkewedRouterWithoutTouchingItsWeights() {
        MoeConfig c = MoeConfig.builder(H, I, 4, 1).scoring(Scoring.SIGMOID).selectionBias(true).build();
        MoeLayer layer = MoeLayer.initialize(c);
        var router = (TopKRouter) layer.router();
        // Skew the router toward expert 0.
        Tensor w = router.parameters().get(0).value();
        for (int j = 0; j < H; j++) {
            w.set(w.get(0, j) + 0.5f, 0, j);
        }
        var balancer = new BiasBalancer(router.selectionBias(), 0.05);
        var random = new Random(8);
        Tensor probe = FiniteDifferences.gaussian(random, 1.0, 400, H);
        for (int j = 0; j < H * 400; j++) {
            probe.setFloat(j, Math.abs(probe.getFloat(j)));
        }
        double before = layer.forward(probe, Mode.INFERENCE).stats().maxViolation();
        for (int step = 0; step < 60; step++) {
            Tensor x = probe.slice(0, 400);
            balancer.observe(layer.forward(x, Mode.TRAINING).stats());
            balancer.step();
        }
        double after = layer.forward(probe, Mode.INFERENCE).stats().maxViolation();
        assertTrue(before > 1.0, "the skew must overload expert 0: " + before);
        assertTrue(after < 0.3 * before, "max violation " + before + " → " + after);
        assertTrue(router.selectionBias().getFloat(0) < 0, "the overloaded expert's bias went down");
    }

    @Test
    void asAGraphOperationTheLayerBackPropagatesLikeItsOwnBackward() {
        MoeConfig c = MoeConfig.builder(H, I, 4, 2).loss(new SwitchLoss(SwitchLoss.Form.PAPER), 0.5).build();
        Tensor x = FiniteDifferences.gaussian(new Random(9), 1.0, 6, H);
        Tensor r = FiniteDifferences.gaussian(new Random(10), 1.0, 6, H);

        MoeLayer direct = MoeLayer.initialize(c);
        MoeResult result = direct.forward(x, Mode.TRAINING);
        float[] dxDirect = direct.backward(result.context(), r).toFloatArray();

        MoeLayer viaGraph = MoeLayer.initialize(c);
        var graph = dev.moe4j.core.autograd.Graph.training();
        var xv = new dev.moe4j.core.autograd.Var(x, true);
        var out = viaGraph.forward(graph, xv, 6).output();
        // loss = Σ r ⊙ out, as a 1×1 product
        var loss = graph.matmul(out.view(1, -1), dev.moe4j.core.autograd.Var.constant(r.reshape(1, -1))).view(1);
        graph.backward(loss);

        assertArrayEquals(dxDirect, xv.grad().toFloatArray(), 1e-5f);
        for (int i = 0; i < direct.parameters().size(); i++) {
            assertArrayEquals(direct.parameters().get(i).grad().toFloatArray(),
                    viaGraph.parameters().get(i).grad().toFloatArray(), 1e-5f, direct.parameters().get(i).name());
        }
    }

    @Test
    void aRouterLogitGradientFromOutsideTheLayerActsAsAConfiguredLoss() {
        MoeConfig withLoss = MoeConfig.builder(H, I, 4, 2).loss(new SwitchLoss(SwitchLoss.Form.TRANSFORMERS), 0.7).build();
        MoeConfig without = withLoss.toBuilder().losses(List.of()).build();
        Tensor x = FiniteDifferences.gaussian(new Random(11), 1.0, 6, H);
        Tensor dOut = FiniteDifferences.gaussian(new Random(12), 1.0, 6, H);

        MoeLayer configured = MoeLayer.initialize(withLoss);
        MoeResult a = configured.forward(x, Mode.TRAINING);
        float[] dxA = configured.backward(a.context(), dOut).toFloatArray();

        MoeLayer external = MoeLayer.initialize(without);
        MoeResult b = external.forward(x, Mode.TRAINING);
        var grads = new dev.moe4j.moe.router.RouterGrads(6, 4);
        new SwitchLoss(SwitchLoss.Form.TRANSFORMERS).backward(b.routing(), 0.7f, grads);
        b.context().addRouterLogitGradient(grads.logits());
        float[] dxB = external.backward(b.context(), dOut).toFloatArray();

        assertArrayEquals(dxA, dxB, 1e-6f);
        assertArrayEquals(configured.parameters().get(0).grad().toFloatArray(),
                external.parameters().get(0).grad().toFloatArray(), 1e-6f);
    }

    @Test
    void noisyTopKWithTheLoadLossRunsInInferenceWithoutTheLoadLoss() {
        MoeConfig c = MoeConfig.builder(H, I, 4, 2).noise(dev.moe4j.moe.router.Noise.learnedGaussian())
                .loss(new dev.moe4j.moe.loss.ImportanceLoss(dev.moe4j.moe.loss.ImportanceLoss.Of.CLEAN_SOFTMAX), 0.1)
                .loss(new dev.moe4j.moe.loss.LoadLoss(dev.moe4j.moe.loss.LoadLoss.Threshold.KTH_EXCLUDING_SELF), 0.1)
                .build();
        MoeLayer layer = MoeLayer.initialize(c);
        Tensor x = FiniteDifferences.gaussian(new Random(5), 1.0, 9, H);
        var inference = layer.forward(x, Mode.INFERENCE);
        assertEquals(List.of("importance"), inference.losses().stream().map(l -> l.name()).toList());
        var training = layer.forward(x, Mode.TRAINING);
        assertEquals(List.of("importance", "load"), training.losses().stream().map(l -> l.name()).toList());
        assertTrue(Double.isFinite(training.auxLoss()));
    }

    @Test
    void badConfigurationsAreRejectedNamingTheField() {
        assertMessage("topK", () -> MoeConfig.builder(H, I, 4, 5).build());
        assertMessage("TOP_K_THEN_SOFTMAX", () -> MoeConfig.builder(H, I, 4, 2).scoring(Scoring.SIGMOID)
                .gateOrder(dev.moe4j.moe.router.GateOrder.TOP_K_THEN_SOFTMAX).build());
        assertMessage("groupLimit.groups", () -> MoeConfig.builder(H, I, 6, 2)
                .groupLimit(dev.moe4j.moe.router.GroupLimit.deepSeekV3(4, 2)).build());
        assertMessage("capacity", () -> MoeConfig.builder(H, I, 4, 1).router(RouterKind.EXPERT_CHOICE).build());
        assertMessage("losses: load", () -> MoeConfig.builder(H, I, 4, 2)
                .loss(new dev.moe4j.moe.loss.LoadLoss(dev.moe4j.moe.loss.LoadLoss.Threshold.KTH_NOISY), 1).build());
        assertMessage("losses: switch", () -> MoeConfig.builder(H, I, 4, 1).router(RouterKind.SOFT)
                .loss(new SwitchLoss(SwitchLoss.Form.PAPER), 1).build());
        assertMessage("sharedGate", () -> MoeConfig.builder(H, I, 4, 2).sharedExpert(0, true).build());
        assertMessage("importance of the top-k gates", () -> MoeConfig.builder(H, I, 4, 1)
                .router(RouterKind.EXPERT_CHOICE).capacity(Capacity.fixed(2))
                .loss(new dev.moe4j.moe.loss.ImportanceLoss(dev.moe4j.moe.loss.ImportanceLoss.Of.TOP_K_GATES), 1).build());
        assertMessage("experts: expected 4 experts", () -> MoeLayer.of(MoeConfig.builder(H, I, 4, 2).build(),
                MoeLayer.initialize(MoeConfig.builder(H, I, 4, 2).build()).router(),
                StackedExpertWeights.initialize("experts.", 3, H, I, true, false, new java.util.SplittableRandom(1)),
                null, null));
    }

    private static void assertMessage(String expected, Runnable action) {
        var e = assertThrows(BadInputException.class, action::run);
        assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' should name " + expected);
        assertFalse(e.getMessage().contains("\n"), "one line");
    }

    // ---- helpers ----

    private static ExpertWeights expertsOf(MoeLayer layer) {
        var gu = layer.parameters().stream().filter(p -> p.name().equals("experts.gate_up_proj")).findFirst().orElseThrow();
        var dn = layer.parameters().stream().filter(p -> p.name().equals("experts.down_proj")).findFirst().orElseThrow();
        return new StackedExpertWeights("experts.", true, gu.value(), dn.value(), null, null);
    }

    /** Per-expert gate/up/down tensors holding the same values, in the given dtype. */
    private static ExpertWeights separateViews(ExpertWeights w, DType dtype) {
        List<Tensor> gate = new ArrayList<>(), up = new ArrayList<>(), down = new ArrayList<>();
        for (int e = 0; e < w.count(); e++) {
            gate.add(w.gate(e).to(dtype));
            up.add(w.up(e).to(dtype));
            down.add(w.down(e).to(dtype));
        }
        return new SeparateExpertWeights(gate, up, down);
    }

    /** Records which experts' matrices the layer asked for. */
    private static final class RecordingWeights implements ExpertWeights {
        final ExpertWeights inner;
        final Set<Integer> touched = new TreeSet<>();

        RecordingWeights(ExpertWeights inner) {
            this.inner = inner;
        }

        public int count() {
            return inner.count();
        }

        public int hidden() {
            return inner.hidden();
        }

        public int intermediate() {
            return inner.intermediate();
        }

        public Tensor gateUp(int e) {
            return inner.gateUp(e);
        }

        public Tensor gate(int e) {
            touched.add(e);
            return inner.gate(e);
        }

        public Tensor up(int e) {
            touched.add(e);
            return inner.up(e);
        }

        public Tensor down(int e) {
            touched.add(e);
            return inner.down(e);
        }
    }
}
