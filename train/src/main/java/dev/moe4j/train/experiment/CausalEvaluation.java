package dev.moe4j.train.experiment;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.model.ForwardObserver;
import dev.moe4j.moe.stats.PredictorConfusion;
import dev.moe4j.model.transformer.KvCache;
import dev.moe4j.model.transformer.Transformer;

import java.util.ArrayList;
import java.util.List;

/**
 * Validation loss measured the way a decoder is used: one token at a time against the KV cache, so that no router
 * can see a later token, beside the loss of the same sequences in one batch routed as in training. Token-choice
 * routers give the same loss both ways; expert choice (batch top-C in training, thresholds or a predictor when
 * decoding) and Soft MoE (slots mixed over the batch) can differ, and that difference is what their batch-mode numbers
 * owe to seeing the future.
 */
public final class CausalEvaluation {
    private CausalEvaluation() {
    }

    /** Both losses over the same sequences: token by token, and in one whole-batch inference pass. */
    public record Losses(double causal, double batch, int tokens) {
        /** What decoding token by token costs against the batch's routing (nats per token). */
        public double gap() {
            return causal - batch;
        }
    }

    /**
     * @param causal    the model as it decodes
     * @param batch     the same weights routed as in training (for expert choice: each expert's top-C of the batch);
     *                  for routers that route each token alone, the same model
     * @param sequences equal-length token sequences; position t predicts token t + 1 of the same sequence
     */
    public static Losses of(Transformer causal, Transformer batch, int[][] sequences) {
        return new Losses(causal(causal, sequences), batch(batch, sequences),
                sequences.length * (sequences[0].length - 1));
    }

    /** The mean loss of the sequences fed one token at a time through the KV cache. */
    public static double causal(Transformer model, int[][] sequences) {
        double sum = 0;
        int count = 0;
        for (int[] seq : sequences) {
            KvCache cache = model.newCache(seq.length);
            for (int t = 0; t + 1 < seq.length; t++) {
                Tensor logits = model.forward(Graph.inference(), cache, new int[] {seq[t]}, true, null).logits().value();
                sum += negativeLogLikelihood(logits, seq[t + 1]);
                count++;
            }
        }
        return sum / count;
    }

    /** The mean loss of the sequences laid side by side in one inference pass. */
    public static double batch(Transformer model, int[][] sequences) {
        int length = sequences[0].length;
        int[] all = new int[sequences.length * length];
        for (int s = 0; s < sequences.length; s++) {
            System.arraycopy(sequences[s], 0, all, s * length, length);
        }
        Graph g = Graph.inference();
        var pass = model.forward(g, all, sequences.length, null);
        return model.crossEntropy(g, pass, all, sequences.length).value().getFloat(0);
    }

    /**
     * Per MoE layer, how the (token, expert) pairs {@code causal} routes in one pass over the sequences (each token by
     * itself, as when decoding) compare with those {@code batch} selects among them: the accuracy, precision and recall
     * of the causal rule as a predictor of the batch's selections. Past the first MoE layer each pass sees the inputs
     * its own routing made, so these are the decisions of the two models as they run.
     */
    public static List<PredictorConfusion> agreement(Transformer causal, Transformer batch, int[][] sequences) {
        List<boolean[]> predicted = pairs(causal, sequences), selected = pairs(batch, sequences);
        var out = new ArrayList<PredictorConfusion>();
        for (int l = 0; l < predicted.size(); l++) {
            out.add(PredictorConfusion.of(predicted.get(l), selected.get(l)));
        }
        return out;
    }

    /** Per MoE layer, [tokens, experts]: whether the expert took the token in one pass over the sequences. */
    private static List<boolean[]> pairs(Transformer model, int[][] sequences) {
        int length = sequences[0].length, n = sequences.length * length;
        int[] all = new int[n];
        for (int s = 0; s < sequences.length; s++) {
            System.arraycopy(sequences[s], 0, all, s * length, length);
        }
        List<Integer> layers = model.moeLayerIndices();
        int experts = model.moeLayers().getFirst().config().experts();
        var taken = new ArrayList<boolean[]>();
        int[] row = new int[layers.size()];
        layers.forEach(l -> taken.add(new boolean[n * experts]));
        model.forward(Graph.inference(), all, sequences.length, new ForwardObserver() {
            // Tokens are heard in row order, once per layer.
            @Override
            public void onRouting(int layer, int position, int[] chosen, float[] weights) {
                int i = layers.indexOf(layer), t = row[i]++;
                for (int e : chosen) {
                    taken.get(i)[t * experts + e] = true;
                }
            }
        });
        return taken;
    }

    /** −log softmax(logits)[target] of a [1, vocab] row, in double precision. */
    static double negativeLogLikelihood(Tensor logits, int target) {
        int v = logits.cols();
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < v; i++) {
            max = Math.max(max, logits.getFloat(i));
        }
        double sum = 0;
        for (int i = 0; i < v; i++) {
            sum += Math.exp(logits.getFloat(i) - max);
        }
        return Math.log(sum) + max - logits.getFloat(target);
    }
}
