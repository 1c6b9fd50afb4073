package dev.moe4j.train.vision;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.model.vision.VisionTransformer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.GradientClipping;
import dev.moe4j.train.optim.LearningRateSchedule;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Trains a {@link VisionTransformer} to classify images: cross-entropy of the class logits plus the MoE layers'
 * own balance losses (their gradients are part of the layers' backward steps), AdamW on the matrices' decay rule of
 * the language models, global-norm clipping, linear warmup then cosine decay. The images come in a new order every
 * epoch, drawn from the seed, so a run is repeatable for a fixed seed and thread count.
 */
public final class ImageTrainer {
    /**
     * @param epochs     passes over the training images
     * @param batch      images per step (an MoE layer routes their patches together)
     * @param lr         peak learning rate
     * @param warmup     steps of linear warmup
     * @param clip       global gradient-norm clip (0: off)
     */
    public record Settings(int epochs, int batch, double lr, double weightDecay, int warmup, double clip, long seed) {
        public Settings {
            if (epochs < 1 || batch < 1 || !(lr > 0) || weightDecay < 0 || warmup < 0 || clip < 0) {
                throw new IllegalArgumentException("bad image training settings " + this);
            }
        }
    }

    /** Hears each step. */
    @FunctionalInterface
    public interface Listener {
        void step(Step step);
    }

    /**
     * One optimiser step: its losses, how fast it went and what its MoE layers did.
     *
     * @param dropped the mean over MoE layers of the share of patches no expert took
     */
    public record Step(int step, int totalSteps, int epoch, double loss, double auxLoss, double lr, double imagesPerSecond,
                       double dropped, double loadCv) {
    }

    /** What training measured: steps, images seen and the wall time of the steps alone. */
    public record Result(int steps, long images, double seconds, double finalLoss) {
        public double imagesPerSecond() {
            return images / seconds;
        }
    }

    private ImageTrainer() {
    }

    public static Result train(VisionTransformer model, LabelledImages data, Settings s, Listener listener) {
        int n = data.count(), batch = Math.min(s.batch(), n), perEpoch = n / batch, total = perEpoch * s.epochs();
        List<Parameter> parameters = List.copyOf(model.parameters().values());
        var optimizer = new AdamW(model.parameters(), new AdamW.Hyper(0.9, 0.999, 1e-8, s.weightDecay()),
                AdamW.MATRICES_ONLY);
        var schedule = new LearningRateSchedule(s.lr(), s.warmup(), total, 0.0, true);
        var random = new SplittableRandom(s.seed());
        int step = 0;
        long images = 0;
        double seconds = 0, lastLoss = Double.NaN;
        for (int epoch = 0; epoch < s.epochs(); epoch++) {
            int[] order = permutation(n, random);
            for (int b = 0; b < perEpoch; b++) {
                long start = System.nanoTime();
                int[] idx = java.util.Arrays.copyOfRange(order, b * batch, (b + 1) * batch);
                parameters.forEach(Var::zeroGrad);
                Graph g = Graph.training();
                var pass = model.forward(g, data.batch(idx));
                Var loss = g.crossEntropy(pass.logits(), data.labels(idx));
                g.backward(loss);
                if (s.clip() > 0) {
                    GradientClipping.clip(parameters, s.clip());
                }
                double lr = schedule.at(step);
                optimizer.step(lr);
                double elapsed = (System.nanoTime() - start) / 1e9;
                seconds += elapsed;
                images += batch;
                step++;
                lastLoss = loss.value().getFloat(0);
                double dropped = 0, cv = 0;
                int parts = pass.moe().stream().mapToInt(m -> m.parts().size()).sum();
                for (var m : pass.moe()) {
                    for (MoeResult r : m.parts()) {
                        var stats = r.stats();
                        dropped += stats.droppedFraction() / parts;
                        cv += stats.loadCv() / parts;
                    }
                }
                if (!Double.isFinite(lastLoss)) {
                    throw new IllegalStateException("the loss stopped being finite at step " + step);
                }
                listener.step(new Step(step, total, epoch + 1, lastLoss, pass.auxLoss(), lr, batch / elapsed, dropped,
                        cv));
            }
        }
        return new Result(step, images, seconds, lastLoss);
    }

    private static int[] permutation(int n, SplittableRandom random) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** Multiply-adds of one image's forward pass (what "equal compute per image" compares). */
    public static long forwardMacs(dev.moe4j.model.vision.VisionConfig c) {
        long p = c.patches(), d = c.hidden();
        long macs = p * c.patchValues() * d + (long) c.classes() * d;
        for (int i = 0; i < c.layers(); i++) {
            macs += 4 * p * d * d + 2 * p * p * d;
            if (c.isMoe(i)) {
                var m = c.moe().orElseThrow();
                long routed = switch (m.router()) {
                    case SOFT -> (long) m.experts() * m.slotsPerExpert() * 2 * d * m.intermediate()
                            + 2 * p * (long) m.experts() * m.slotsPerExpert() * d;
                    case EXPERT_CHOICE -> (long) Math.round(m.capacity().factor() * p) * 2 * d * m.intermediate();
                    default -> p * m.topK() * 2 * d * m.intermediate();
                };
                macs += routed + p * d * m.experts();
            } else {
                macs += 2 * p * d * c.mlpWidth();
            }
        }
        return macs;
    }

}
