package dev.moe4j.train.vision;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.vision.VisionTransformer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.dispatch.Dispatch;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.List;

/**
 * A model's accuracy on a labelled set, overall and per class, and what its MoE layers did with the patches: tokens
 * per expert, the share of patches that reached an expert and of the assignments served (both below 1 only under a
 * capacity), and for chosen images each patch's expert (the one of largest gate weight; −1 when dropped).
 *
 * @param patchExperts [chosen image][MoE layer][patch]
 */
public record ImageEvaluation(int images, int correct, int[] classCorrect, int[] classCount, List<Layer> layers,
                              int[][][] patchExperts, int[] predictions, double seconds) {

    /** One MoE layer's work over the whole set. */
    public record Layer(int layer, long[] tokensPerExpert, long patches, long processed, long assignments,
                        long requested) {
        /** Share of patches that at least one expert processed. */
        public double processedShare() {
            return patches == 0 ? 1 : (double) processed / patches;
        }

        /** Share of the (patch, expert) choices the experts served. */
        public double servedShare() {
            return requested == 0 ? 1 : (double) assignments / requested;
        }
    }

    public double accuracy() {
        return (double) correct / images;
    }

    public double classAccuracy(int c) {
        return classCount[c] == 0 ? Double.NaN : (double) classCorrect[c] / classCount[c];
    }

    /** Mean over the MoE layers of the share of patches processed (1 for a dense model). */
    public double processedShare() {
        return layers.stream().mapToDouble(Layer::processedShare).average().orElse(1);
    }

    /**
     * Evaluates {@code model} on {@code data} in batches of {@code batch} images, its token-choice MoE layers routed by
     * {@code policy}, keeping the patch experts of the images {@code keep} (ascending).
     */
    public static ImageEvaluation of(VisionTransformer model, LabelledImages data, RoutingPolicy policy, int batch,
                                     int... keep) {
        long start = System.nanoTime();
        int n = data.count(), classes = data.classes().size(), tokens = model.config().patches();
        int[] classCorrect = new int[classes], classCount = new int[classes], predictions = new int[n];
        int correct = 0;
        List<long[]> loads = new ArrayList<>();
        long[] processed = null, assignments = null, requested = null;
        List<Integer> layerIndex = List.of();
        int[][][] patchExperts = new int[keep.length][][];
        for (int from = 0; from < n; from += batch) {
            int size = Math.min(batch, n - from);
            int[] idx = new int[size];
            for (int i = 0; i < size; i++) {
                idx[i] = from + i;
            }
            var pass = model.forward(Graph.inference(), data.batch(idx), policy);
            Tensor logits = pass.logits().value();
            for (int i = 0; i < size; i++) {
                int best = 0;
                for (int c = 1; c < classes; c++) {
                    if (logits.get(i, c) > logits.get(i, best)) {
                        best = c;
                    }
                }
                int label = data.label(from + i);
                predictions[from + i] = best;
                classCount[label]++;
                if (best == label) {
                    correct++;
                    classCorrect[label]++;
                }
            }
            if (processed == null) {
                layerIndex = pass.moeLayers();
                processed = new long[layerIndex.size()];
                assignments = new long[layerIndex.size()];
                requested = new long[layerIndex.size()];
                for (var m : pass.moe()) {
                    loads.add(new long[m.parts().getFirst().routing().experts()]);
                }
            }
            for (int l = 0; l < pass.moe().size(); l++) {
                var m = pass.moe().get(l);
                int[] expertOf = new int[size * tokens];
                int at = 0;
                for (MoeResult r : m.parts()) {
                    System.arraycopy(firstExpert(r, m.tokensPerPart()), 0, expertOf, at, m.tokensPerPart());
                    at += m.tokensPerPart();
                    var stats = r.stats();
                    for (int e = 0; e < stats.tokensPerExpert().length; e++) {
                        loads.get(l)[e] += stats.tokensPerExpert()[e];
                    }
                    Dispatch d = r.routing().dispatch();
                    assignments[l] += d == null ? m.tokensPerPart() : d.rows();
                    requested[l] += d == null ? m.tokensPerPart() : r.routing().requested();
                }
                for (int t : expertOf) {
                    processed[l] += t >= 0 ? 1 : 0;
                }
                for (int j = 0; j < keep.length; j++) {
                    int i = keep[j] - from;
                    if (i < 0 || i >= size) {
                        continue;
                    }
                    if (patchExperts[j] == null) {
                        patchExperts[j] = new int[pass.moe().size()][];
                    }
                    patchExperts[j][l] = java.util.Arrays.copyOfRange(expertOf, i * tokens, (i + 1) * tokens);
                }
            }
        }
        var layers = new ArrayList<Layer>();
        for (int l = 0; l < layerIndex.size(); l++) {
            layers.add(new Layer(layerIndex.get(l), loads.get(l), (long) n * tokens, processed[l], assignments[l],
                    requested[l]));
        }
        for (int i = 0; i < keep.length; i++) {
            if (patchExperts[i] == null) {
                patchExperts[i] = new int[0][];
            }
        }
        return new ImageEvaluation(n, correct, classCorrect, classCount, layers, patchExperts, predictions,
                (System.nanoTime() - start) / 1e9);
    }

    /**
     * Each token's expert of largest gate weight, −1 for a token no expert took. Soft MoE has no such choice: each
     * token is given the expert whose slots weigh it most in their mix.
     */
    public static int[] firstExpert(MoeResult r, int tokens) {
        int[] best = new int[tokens];
        java.util.Arrays.fill(best, -1);
        float[] weight = new float[tokens];
        Dispatch d = r.routing().dispatch();
        if (d != null) {
            int[] expertOf = d.expertOfRows();
            for (int row = 0; row < d.rows(); row++) {
                int t = d.token()[row];
                if (best[t] < 0 || d.weight()[row] > weight[t]) {
                    best[t] = expertOf[row];
                    weight[t] = d.weight()[row];
                }
            }
            return best;
        }
        var soft = r.routing().soft();
        int slots = soft.slots(), perExpert = soft.slotsPerExpert();
        float[] dispatch = soft.dispatch();
        for (int t = 0; t < tokens; t++) {
            for (int s = 0; s < slots; s++) {
                float w = dispatch[t * slots + s];
                if (best[t] < 0 || w > weight[t]) {
                    best[t] = s / perExpert;
                    weight[t] = w;
                }
            }
        }
        return best;
    }
}
