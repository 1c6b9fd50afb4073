package dev.moe4j.model.parity;

import dev.moe4j.core.backend.CpuBackend;
import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.core.testing.TensorAssert;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.Gpu;
import dev.moe4j.cuda.TransformersBf16;
import dev.moe4j.cuda.Precision;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.IntStream;

import static dev.moe4j.core.testing.Reference.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each fixture model loaded onto the GPU (BF16 matrices, an F32 checkpoint converted as it loads; routers and
 * vectors F32) against two yardsticks, within BF16's tolerance of 1e-2 relative (max|Δ| / max|ref|):
 * <ul>
 * <li>the same BF16 weights computed on the CPU in F32: what the GPU's arithmetic must reproduce, always;</li>
 * <li>transformers' float32 reference: wherever rounding the weights to BF16 does not itself move the model past
 * the tolerance; the bound is 1e-2 or, where larger, the error of transformers' own BF16 run of the fixture
 * ({@link TransformersBf16}: only deepseek-v3's, 1.56e-2, is). Where it does (a token whose experts nearly tie, so that the rounded weights route it elsewhere),
 * no BF16 model can match the F32 reference there, and the test says so and holds the GPU to the first
 * yardstick.</li>
 * </ul>
 * BF16 activations move the router's logits slightly; where a token's k-th and (k+1)-th experts score closer than
 * that (measured per token), the GPU may route it elsewhere, which no rounding tolerance covers. Such a flip must be
 * a near-tie by that measure, and its sequence is left out of the logits' comparison (the fixtures hold two
 * independent sequences); every other sequence is held to the tolerance.
 * Greedy decoding through the KV cache on the device picks the yardstick's token at every step whose top-2 gap
 * exceeds twice the logits' measured error (the whole continuation when the reference's smallest gap does).
 *
 * <p>In {@link Precision#F32} the GPU is held to the float32 standard the CPU meets: logits within 1e-4 of
 * transformers', every token routed to the CPU's experts, and the greedy continuation identical.
 */
class GpuArchitectureParityTest {
    private static final double TOLERANCE = 1e-2;
    /** The float32 standard: what the CPU meets against the same references (ArchitectureParityTest). */
    private static final double FLOAT32 = 1e-4;

    static List<String> cases() {
        return List.of("mixtral", "mixtral-bf16-sharded", "qwen2-moe", "qwen3-moe", "olmoe", "deepseek-v3", "gpt-oss");
    }

    @ParameterizedTest
    @MethodSource("cases")
    void logitsOnTheGpuMatchTransformersAndGreedyTokensWhereTheGapAllows(String name) {
        CudaDevice d = Gpu.device();
        var ref = new HfReference(name);
        JsonNode greedy = Json.read(ref.folder.resolve("reference.json")).get("greedy");
        double minGap = greedy.get("min_top2_logit_gap").asDouble();
        try (TransformerModel gpu = ref.load(d.backend());
             TransformerModel cpu = ref.load(CpuBackend.INSTANCE)) {
            Transformer bf16Weights = ModelLoader.loadForTraining(ref.folder, ref.config());
            bf16Weights.parameters().forEach((n, v) -> {
                if (Transformer.placedType(n, v.value().rank(), d.backend()) == DType.BF16) {
                    v.value().copyFrom(v.value().to(DType.BF16));
                }
            });
            double[] onGpu;
            var gpuTrace = new Trace();
            var cpuTrace = new Trace();
            try (var scope = MemoryScope.open()) {
                onGpu = values(gpu.transformer().forward(Graph.inference(), ref.inputIds(), ref.batch(), gpuTrace)
                        .logits().value().toHost().to(DType.F32));
            }
            double[] sameWeights = values(bf16Weights.forward(Graph.inference(), ref.inputIds(), ref.batch(), cpuTrace)
                    .logits().value());
            int batch = ref.batch(), length = ref.inputIds().length / batch;
            List<Flip> flips = gpuTrace.flips(cpuTrace);
            System.out.printf("GPU parity %-21s hidden states vs the same BF16 weights on the CPU %s; %d of %d routings"
                    + " choose other experts%s%n", name, gpuTrace.hiddenErrors(cpuTrace), flips.size(),
                    gpuTrace.experts.size(), flips.isEmpty() ? "" : " " + flips);
            // A routing may differ only where the yardstick's last chosen and first unchosen experts score closer
            // than this pass's router logits drift from the yardstick's (BF16 activations): a near-tie, which then
            // changes that sequence's logits by far more than rounding. Sequences are independent (attention stays
            // within each), so the others are still held to the tolerance.
            boolean[] compared = new boolean[batch];
            Arrays.fill(compared, true);
            for (Flip f : flips) {
                assertTrue(f.gap() < f.drift(), name + ": " + f + " is not a near-tie");
                compared[f.row() / length] = false;
            }
            assertTrue(IntStream.range(0, batch).anyMatch(b -> compared[b]),
                    name + ": every sequence has a routing near-tie, nothing left to compare");
            double[] fullReference = ref.values("logits"), fullOnGpu = onGpu, fullSameWeights = sameWeights;
            double[] reference = sequences(fullReference, compared);
            onGpu = sequences(onGpu, compared);
            sameWeights = sequences(sameWeights, compared);
            double gpuVsReference = TensorAssert.relativeError(reference, onGpu);
            double weightsVsReference = TensorAssert.relativeError(reference, sameWeights);
            double gpuVsSameWeights = TensorAssert.relativeError(sameWeights, onGpu);
            boolean referenceHolds = weightsVsReference <= TOLERANCE;
            System.out.printf("GPU parity %-21s logits%s vs transformers %.2e, vs the same BF16 weights on the CPU "
                            + "%.2e (those weights alone: %.2e from transformers%s)%n", name,
                    flips.isEmpty() ? "" : " of the sequences without a near-tie", gpuVsReference, gpuVsSameWeights,
                    weightsVsReference, referenceHolds ? "" : ": a routing near-tie");
            assertTrue(gpuVsSameWeights <= TOLERANCE, name + ": the GPU is " + gpuVsSameWeights
                    + " from its own weights computed on the CPU");
            if (referenceHolds) {
                // BF16's tolerance, or what transformers' own BF16 run reaches on this fixture where that is further
                // (deepseek-v3: 1.56e-2, its many MLA and MoE roundings).
                double bound = Math.max(TOLERANCE, TransformersBf16.logitsError(name));
                System.out.printf("GPU parity %-21s transformers' own BF16 logits: %.2e from its float32; bound %.2e%n",
                        name, TransformersBf16.logitsError(name), bound);
                assertTrue(gpuVsReference <= bound, name + ": relative error " + gpuVsReference + " > " + bound);
            }

            // The greedy prompt may hold near-ties too: its margin is the whole batch's measured error, flips included,
            // and transformers is its yardstick only where the BF16 weights alone stay within the tolerance of it.
            referenceHolds = TensorAssert.relativeError(fullReference, fullSameWeights) <= TOLERANCE;
            int[] prompt = ref.greedyPrompt(), tokens = ref.greedyOutput();
            double margin = 2 * maxAbsDifference(referenceHolds ? fullReference : fullSameWeights, fullOnGpu);
            if (referenceHolds && minGap > margin) {
                assertArrayEquals(tokens, greedy(gpu, prompt, tokens.length), name + ": greedy continuation on the GPU");
                System.out.printf("GPU parity %-21s greedy: all %d tokens identical to transformers'%n", name,
                        tokens.length - prompt.length);
            } else {
                int checked = teacherForced(gpu, cpu, referenceHolds ? null : bf16Weights, prompt, tokens, margin, name);
                System.out.printf("GPU parity %-21s greedy: %d of %d steps have a top-2 gap above %.2e; all of them "
                        + "pick %s token%n", name, checked, tokens.length - prompt.length, margin,
                        referenceHolds ? "transformers'" : "the BF16 weights' CPU");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void inF32PrecisionLogitsMatchTransformersToFloat32AccuracyAndGreedyTokensAreIdentical(String name) {
        CudaDevice d = Gpu.device(Precision.F32);
        var ref = new HfReference(name);
        try (TransformerModel gpu = ref.load(d.backend());
             TransformerModel cpu = ref.load(CpuBackend.INSTANCE)) {
            var gpuTrace = new Trace();
            var cpuTrace = new Trace();
            double[] onGpu;
            try (var scope = MemoryScope.open()) {
                Tensor logits = gpu.transformer().forward(Graph.inference(), ref.inputIds(), ref.batch(), gpuTrace)
                        .logits().value();
                assertEquals(DType.F32, logits.dtype(), name + ": logits in F32");
                onGpu = values(logits.toHost());
            }
            double[] onCpu = values(cpu.transformer().forward(Graph.inference(), ref.inputIds(), ref.batch(), cpuTrace)
                    .logits().value());
            double[] reference = ref.values("logits");
            double gpuVsReference = TensorAssert.relativeError(reference, onGpu);
            double cpuVsReference = TensorAssert.relativeError(reference, onCpu);
            List<Flip> flips = gpuTrace.flips(cpuTrace);
            int[] prompt = ref.greedyPrompt(), tokens = ref.greedyOutput();
            int[] continuation = greedy(gpu, prompt, tokens.length);
            int identical = (int) IntStream.range(prompt.length, tokens.length)
                    .filter(t -> continuation[t] == tokens[t]).count();
            System.out.printf("GPU parity f32 %-21s logits vs transformers %.2e (the CPU: %.2e; bound %.0e); hidden "
                            + "states vs the CPU %s; %d of %d routings choose other experts than the CPU%s; greedy: %d "
                            + "of %d tokens identical%n", name, gpuVsReference, cpuVsReference, FLOAT32,
                    gpuTrace.hiddenErrors(cpuTrace), flips.size(), gpuTrace.experts.size(),
                    flips.isEmpty() ? "" : " " + flips, identical, tokens.length - prompt.length);
            assertTrue(flips.isEmpty(), name + ": in F32 the GPU routes tokens elsewhere than the CPU: " + flips);
            assertTrue(gpuVsReference <= FLOAT32, name + ": logits " + gpuVsReference + " from transformers' > "
                    + FLOAT32);
            assertArrayEquals(tokens, continuation, name + ": greedy continuation on the GPU in F32");
        }
    }

    /** What a forward pass showed its observer: host copies of the hidden states, each token's experts per layer. */
    private static final class Trace implements ForwardObserver {
        final Map<Integer, double[]> hidden = new TreeMap<>();
        final Map<String, int[]> experts = new TreeMap<>();
        final Map<Integer, double[]> routerLogits = new TreeMap<>();
        final Map<Integer, Integer> width = new TreeMap<>();

        @Override
        public void onRouterLogits(int layer, Tensor logits) {
            routerLogits.put(layer, values(logits.toHost().to(DType.F32)));
            width.put(layer, logits.cols());
        }

        @Override
        public void onHiddenState(int index, Tensor h) {
            hidden.put(index, values(h.to(DType.F32)));
        }

        final Map<Integer, Integer> rows = new TreeMap<>();

        @Override
        public void onRouting(int layer, int position, int[] chosen, float[] weights) {
            // rows come in order, sequences laid end to end; keyed by row, since positions repeat per sequence
            int row = rows.merge(layer, 1, Integer::sum) - 1;
            experts.put(layer + "/" + row, chosen.clone());
        }

        /** Relative error of each hidden state against {@code yardstick}'s. */
        String hiddenErrors(Trace yardstick) {
            var out = new StringBuilder();
            hidden.forEach((i, h) -> out.append(String.format(java.util.Locale.ROOT, " %d:%.1e", i,
                    TensorAssert.relativeError(yardstick.hidden.get(i), h))));
            return out.toString().trim();
        }

        /**
         * The (layer, row) routings that choose another set of experts than {@code yardstick}'s, each with the
         * yardstick's gap between its k-th and (k+1)-th router logit and how far this pass's router logits of that
         * row are from the yardstick's.
         */
        List<Flip> flips(Trace yardstick) {
            var out = new java.util.ArrayList<Flip>();
            for (var entry : experts.entrySet()) {
                int[] a = entry.getValue().clone(), b = yardstick.experts.get(entry.getKey()).clone();
                Arrays.sort(a);
                Arrays.sort(b);
                if (Arrays.equals(a, b)) {
                    continue;
                }
                int layer = Integer.parseInt(entry.getKey().split("/")[0]);
                int row = Integer.parseInt(entry.getKey().split("/")[1]);
                int e = width.get(layer), k = a.length;
                double[] mine = Arrays.copyOfRange(routerLogits.get(layer), row * e, row * e + e);
                double[] theirs = Arrays.copyOfRange(yardstick.routerLogits.get(layer), row * e, row * e + e);
                double drift = 0;
                for (int i = 0; i < e; i++) {
                    drift = Math.max(drift, Math.abs(mine[i] - theirs[i]));
                }
                double[] sorted = theirs.clone();
                Arrays.sort(sorted);
                out.add(new Flip(layer, row, sorted[e - k] - sorted[e - k - 1], drift));
            }
            return out;
        }
    }

    /** A routing that differs from the yardstick's (see {@link Trace#flips}). */
    record Flip(int layer, int row, double gap, double drift) {
        @Override
        public String toString() {
            return String.format(java.util.Locale.ROOT, "(layer %d, row %d: the yardstick's k-th and (k+1)-th router"
                    + " logits %.1e apart, this pass's router logits up to %.1e from its)", layer, row, gap, drift);
        }
    }

    /** The logits [batch, tokens, vocab] of the sequences marked in {@code keep}. */
    private static double[] sequences(double[] logits, boolean[] keep) {
        int per = logits.length / keep.length;
        return IntStream.range(0, keep.length).filter(b -> keep[b])
                .flatMap(b -> IntStream.range(b * per, (b + 1) * per)).mapToDouble(i -> logits[i]).toArray();
    }

    private static int[] greedy(TransformerModel model, int[] prompt, int length) {
        InferenceState state = model.newState(length);
        Tensor logits = model.forward(state, prompt, true, null);
        int[] out = Arrays.copyOf(prompt, length);
        for (int t = prompt.length; t < length; t++) {
            out[t] = argmax(logits);
            if (t + 1 < length) {
                logits = model.forward(state, new int[] {out[t]}, true, null);
            }
        }
        return out;
    }

    /**
     * Feeds the reference's tokens to the GPU model and to a CPU yardstick (the F32 model, whose picks are the
     * reference's, or {@code sameWeights}); returns how many steps had a gap wide enough to check.
     */
    private static int teacherForced(TransformerModel gpu, TransformerModel cpu, Transformer sameWeights, int[] prompt,
                                     int[] tokens, double margin, String name) {
        InferenceState g = gpu.newState(tokens.length), c = cpu.newState(tokens.length);
        var cache = sameWeights == null ? null : sameWeights.newCache(tokens.length);
        Tensor gl = gpu.forward(g, prompt, true, null);
        Tensor cl = sameWeights == null ? cpu.forward(c, prompt, true, null)
                : sameWeights.forward(Graph.inference(), cache, prompt, true, null).logits().value();
        int checked = 0;
        for (int t = prompt.length; t < tokens.length; t++) {
            if (topTwoGap(cl) > margin) {
                int expected = sameWeights == null ? tokens[t] : argmax(cl);
                assertEquals(expected, argmax(gl), name + ": token " + t + " on the GPU");
                checked++;
            }
            if (t + 1 < tokens.length) {
                int[] next = {tokens[t]};
                gl = gpu.forward(g, next, true, null);
                cl = sameWeights == null ? cpu.forward(c, next, true, null)
                        : sameWeights.forward(Graph.inference(), cache, next, true, null).logits().value();
            }
        }
        return checked;
    }

    private static double topTwoGap(Tensor logits) {
        float first = Float.NEGATIVE_INFINITY, second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < logits.size(); i++) {
            float v = logits.getFloat(i);
            if (v > first) {
                second = first;
                first = v;
            } else if (v > second) {
                second = v;
            }
        }
        return first - second;
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

    private static double maxAbsDifference(double[] a, double[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }
}
