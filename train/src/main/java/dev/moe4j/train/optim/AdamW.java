package dev.moe4j.train.optim;

import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Adam with decoupled weight decay (Loshchilov and Hutter), step for step as {@code torch.optim.AdamW} computes
 * it on the CPU: decay the weight by lr·λ first, then move the first moment toward the gradient (lerp), the
 * second by β₂ plus (1 − β₂)·g², and step by lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε).
 *
 * <p>Weight decay applies to the parameters {@code decays} accepts; the trainer's default spares norms and
 * biases ({@link #MATRICES_ONLY}, Hugging Face Trainer's rule), while {@code --decay-all} decays everything, as
 * {@code torch.optim.AdamW(model.parameters())} does.
 */
public final class AdamW {
    /** β₁, β₂, ε and λ; the learning rate comes per step from the schedule. */
    public record Hyper(double beta1, double beta2, double eps, double weightDecay) {
        public Hyper {
            if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0 && weightDecay >= 0)) {
                throw new IllegalArgumentException("AdamW needs 0 <= beta < 1, eps > 0, weight decay >= 0: " + this);
            }
        }

        /** PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, λ = 0.01. */
        public static Hyper pytorchDefaults() {
            return new Hyper(0.9, 0.999, 1e-8, 0.01);
        }
    }

    /**
     * Decay the matrices but not the norm weights and biases, as Hugging Face's Trainer does (it spares parameters
     * named as biases and norms): every vector is spared (norms, biases, and also gpt-oss's attention sinks, which
     * the Trainer decays), and so are stacked biases (gpt-oss's experts').
     */
    public static final Predicate<Parameter> MATRICES_ONLY = p -> p.value().rank() >= 2 && !p.name().contains("bias");

    /** Decay every parameter, as {@code torch.optim.AdamW(model.parameters())} does. */
    public static final Predicate<Parameter> ALL = p -> true;

    private final List<Parameter> parameters;
    private final List<String> names;
    private final Hyper hyper;
    private final boolean[] decayed;
    private final Tensor[] firstMoment;
    private final Tensor[] secondMoment;
    private long step;

    /** Updates {@code parameters}, whose state is saved under their own names. */
    public AdamW(List<Parameter> parameters, Hyper hyper, Predicate<Parameter> decays) {
        this(names(parameters), hyper, decays);
    }

    /**
     * Updates the parameters of {@code named}, whose state is saved under the map's keys (a model's full names:
     * layers' parameters know only their names within the layer).
     */
    public AdamW(Map<String, Parameter> named, Hyper hyper, Predicate<Parameter> decays) {
        this.parameters = List.copyOf(named.values());
        this.names = List.copyOf(named.keySet());
        this.hyper = hyper;
        this.decayed = new boolean[this.parameters.size()];
        this.firstMoment = new Tensor[this.parameters.size()];
        this.secondMoment = new Tensor[this.parameters.size()];
        for (int i = 0; i < decayed.length; i++) {
            Parameter p = this.parameters.get(i);
            if (p.value().dtype() != DType.F32) {
                throw new IllegalArgumentException("AdamW updates F32 master weights; " + p.name() + " is " + p.value().dtype());
            }
            decayed[i] = decays.test(p);
            firstMoment[i] = Tensor.zeros(p.value().shape());
            secondMoment[i] = Tensor.zeros(p.value().shape());
        }
    }

    private static Map<String, Parameter> names(List<Parameter> parameters) {
        var out = new LinkedHashMap<String, Parameter>();
        for (Parameter p : parameters) {
            if (out.put(p.name(), p) != null) {
                throw new IllegalArgumentException("two parameters are called " + p.name() + "; name them by a map");
            }
        }
        return out;
    }

    public Hyper hyper() {
        return hyper;
    }

    /** Steps taken so far. */
    public long steps() {
        return step;
    }

    public List<Parameter> parameters() {
        return parameters;
    }

    /** One update of every parameter from its current gradient with learning rate {@code lr}. */
    public void step(double lr) {
        step(lr, 1f);
    }

    /**
     * One update from the gradients times {@code gradScale} (clipping's coefficient, applied as the update reads
     * each gradient: the same float products as scaling the gradients first, without another pass over them).
     */
    public void step(double lr, float gradScale) {
        step++;
        double bias1 = 1 - Math.pow(hyper.beta1(), step);
        double bias2Sqrt = Math.sqrt(1 - Math.pow(hyper.beta2(), step));
        float stepSize = (float) (lr / bias1);
        for (int i = 0; i < decayed.length; i++) {
            Parameter p = parameters.get(i);
            if (!p.hasGrad()) {
                continue; // PyTorch skips parameters without a gradient, decay included
            }
            float keep = decayed[i] ? (float) (1 - lr * hyper.weightDecay()) : 1f;
            update(p.value().segment(), p.grad().segment(), firstMoment[i].segment(), secondMoment[i].segment(),
                    p.value().size(), gradScale, keep, (float) (1 - hyper.beta1()), (float) hyper.beta2(),
                    (float) (1 - hyper.beta2()), (float) bias2Sqrt, (float) hyper.eps(), stepSize);
        }
    }

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    /**
     * The update over n elements, vectorised. Multiplies and adds stay separate (no fused multiply-add) and
     * square root and division are exact in both forms, so every element gets the same float as the scalar
     * formula gives it.
     */
    private static void update(MemorySegment w, MemorySegment g, MemorySegment m, MemorySegment v, long n,
                               float gradScale, float keep,
                               float oneMinusBeta1, float beta2, float oneMinusBeta2, float bias2Sqrt, float eps,
                               float stepSize) {
        int chunks = (int) Math.min(Integer.MAX_VALUE, (n + 4095) / 4096);
        Parallel.forRange(chunks, 16, (from, to) -> {
            long start = (long) from * 4096, end = Math.min(n, (long) to * 4096);
            long i = start;
            for (long bound = start + F.loopBound(end - start); i < bound; i += F.length()) {
                long o = i * 4;
                var grad = FloatVector.fromMemorySegment(F, g, o, ByteOrder.LITTLE_ENDIAN);
                if (gradScale != 1f) {
                    grad = grad.mul(gradScale);
                }
                var weight = FloatVector.fromMemorySegment(F, w, o, ByteOrder.LITTLE_ENDIAN).mul(keep);
                var mi = FloatVector.fromMemorySegment(F, m, o, ByteOrder.LITTLE_ENDIAN);
                mi = mi.add(grad.sub(mi).mul(oneMinusBeta1));
                var vi = FloatVector.fromMemorySegment(F, v, o, ByteOrder.LITTLE_ENDIAN).mul(beta2)
                        .add(grad.mul(oneMinusBeta2).mul(grad));
                var denom = vi.sqrt().div(bias2Sqrt).add(eps);
                mi.intoMemorySegment(m, o, ByteOrder.LITTLE_ENDIAN);
                vi.intoMemorySegment(v, o, ByteOrder.LITTLE_ENDIAN);
                weight.sub(mi.mul(stepSize).div(denom)).intoMemorySegment(w, o, ByteOrder.LITTLE_ENDIAN);
            }
            for (; i < end; i++) {
                long o = i * 4;
                float grad = g.get(ValueLayout.JAVA_FLOAT_UNALIGNED, o);
                grad = gradScale != 1f ? grad * gradScale : grad;
                float weight = w.get(ValueLayout.JAVA_FLOAT_UNALIGNED, o) * keep;
                float mi = m.get(ValueLayout.JAVA_FLOAT_UNALIGNED, o);
                mi += oneMinusBeta1 * (grad - mi);
                float vi = v.get(ValueLayout.JAVA_FLOAT_UNALIGNED, o) * beta2 + oneMinusBeta2 * grad * grad;
                float denom = (float) Math.sqrt(vi) / bias2Sqrt + eps;
                m.set(ValueLayout.JAVA_FLOAT_UNALIGNED, o, mi);
                v.set(ValueLayout.JAVA_FLOAT_UNALIGNED, o, vi);
                w.set(ValueLayout.JAVA_FLOAT_UNALIGNED, o, weight - stepSize * mi / denom);
            }
        });
    }

    /** The moments by parameter name ("<name>.exp_avg", "<name>.exp_avg_sq"), for checkpoints. */
    public Map<String, Tensor> state() {
        var out = new LinkedHashMap<String, Tensor>();
        for (int i = 0; i < decayed.length; i++) {
            out.put(names.get(i) + ".exp_avg", firstMoment[i]);
            out.put(names.get(i) + ".exp_avg_sq", secondMoment[i]);
        }
        return out;
    }

    /** Restores moments and step count saved by {@link #state()} (resuming a run exactly). */
    public void restore(Map<String, Tensor> state, long steps) {
        var missing = new ArrayList<String>();
        for (int i = 0; i < decayed.length; i++) {
            String name = names.get(i);
            Tensor m = state.get(name + ".exp_avg"), v = state.get(name + ".exp_avg_sq");
            if (m == null || v == null || m.size() != firstMoment[i].size() || v.size() != secondMoment[i].size()) {
                missing.add(name);
                continue;
            }
            firstMoment[i].copyFrom(m);
            secondMoment[i].copyFrom(v);
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("optimizer state lacks or mis-shapes the moments of " + missing);
        }
        this.step = steps;
    }
}
