package dev.moe4j.train;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.backend.Backend;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.loss.BiasBalancer;
import dev.moe4j.moe.router.TopKRouter;
import dev.moe4j.moe.stats.PredictorConfusion;
import dev.moe4j.moe.stats.RoutingStats;
import dev.moe4j.train.data.BatchSampler.Batch;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.GradientClipping;
import dev.moe4j.train.optim.LearningRateSchedule;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Optimiser steps over a {@link Transformer}: each step runs its micro-batches forward and backward on a training
 * graph (gradients accumulate; the step's cross-entropy is the mean over all its loss tokens, so a micro-batch's
 * weighs its share of them, and the auxiliary loss weighs 1/M), clips the global gradient norm, moves every
 * parameter with AdamW at the schedule's rate, then moves the MoE layers' selection biases toward balance when
 * bias balancing is on. Everything that varies between steps derives from the step number (batches, router noise),
 * so a run restored from {@link #state} continues exactly as an uninterrupted one.
 */
public final class Trainer {
    /** Where micro-batch {@code micro} of {@code microSteps} of step {@code step} comes from. */
    @FunctionalInterface
    public interface BatchSource {
        Batch batch(long step, int micro, int microSteps);
    }

    /**
     * How each step is taken.
     *
     * @param clipNorm       clip the global gradient norm to this (0: off)
     * @param microSteps     micro-batches per step (gradient accumulation)
     * @param biasBalancing  γ of the aux-loss-free bias balancing (0: off)
     * @param seed           seeds the router noise, with the step, micro-step and layer
     */
    public record Settings(LearningRateSchedule schedule, double clipNorm, int microSteps, double biasBalancing,
                           long seed) {
        public Settings {
            if (microSteps < 1) {
                throw new IllegalArgumentException("microSteps must be >= 1, got " + microSteps);
            }
        }
    }

    private final Transformer model;
    private final Map<String, Parameter> parameters;
    private final AdamW optimizer;
    private Settings settings;
    private final List<MoeLayer> moeLayers;
    private final List<BiasBalancer> balancers = new ArrayList<>();
    /** The model's copy on a GPU where forward and backward run, or null on the CPU. */
    private final DeviceReplica replica;

    public Trainer(Transformer model, AdamW.Hyper hyper, Predicate<Parameter> decays, Settings settings) {
        this(model, hyper, decays, settings, CpuBackend.INSTANCE);
    }

    /**
     * A trainer whose forward and backward passes run on {@code backend}'s device (a copy of the model there); the
     * optimiser keeps the master weights on the host.
     */
    public Trainer(Transformer model, AdamW.Hyper hyper, Predicate<Parameter> decays, Settings settings,
                   Backend backend) {
        this.model = model;
        this.parameters = parameters(model);
        this.optimizer = new AdamW(parameters, hyper, decays);
        this.settings = settings;
        this.replica = backend.device().isHost() ? null : new DeviceReplica(model, backend);
        // Noise is drawn where the passes run; the balancers move the host's biases, which go to the device each step.
        this.moeLayers = (replica == null ? model : replica.model()).moeLayers();
        for (MoeLayer layer : model.moeLayers()) {
            if (settings.biasBalancing() > 0 && layer.router() instanceof TopKRouter r && r.selectionBias() != null) {
                balancers.add(new BiasBalancer(r.selectionBias(), settings.biasBalancing()));
            } else {
                balancers.add(null);
            }
        }
    }

    /** The MoE layers the passes run, in layer order: the device copy's when the trainer runs on a device. */
    public List<MoeLayer> moeLayers() {
        return moeLayers;
    }

    /**
     * The model's trainable parameters by their full names: every weight that takes a gradient (all of them in full
     * fine-tuning, only the adapters beside frozen weights in LoRA fine-tuning); each must be a {@link Parameter}.
     */
    public static Map<String, Parameter> parameters(Transformer model) {
        var out = new LinkedHashMap<String, Parameter>();
        model.parameters().forEach((name, v) -> {
            if (!v.requiresGrad()) {
                return;
            }
            if (!(v instanceof Parameter p)) {
                throw new IllegalArgumentException(name + " takes a gradient but is not a parameter");
            }
            out.put(name, p);
        });
        if (out.isEmpty()) {
            throw new IllegalArgumentException(model + " has nothing to train (it was loaded for inference)");
        }
        return out;
    }

    public Transformer model() {
        return model;
    }

    public Map<String, Parameter> parameters() {
        return parameters;
    }

    /** Optimiser steps taken. */
    public long steps() {
        return optimizer.steps();
    }

    /** Changes the schedule (a time-budgeted run fixes its length once it knows its speed). */
    public void schedule(LearningRateSchedule schedule) {
        settings = new Settings(schedule, settings.clipNorm(), settings.microSteps(), settings.biasBalancing(),
                settings.seed());
    }

    public Settings settings() {
        return settings;
    }

    /** One optimiser step over the micro-batches {@code source} gives for the next step number. */
    public StepMetrics step(BatchSource source) {
        long started = System.nanoTime();
        long step = optimizer.steps();
        int m = settings.microSteps();
        for (Parameter p : parameters.values()) {
            p.zeroGrad();
        }
        Transformer passes = model;
        if (replica != null) {
            replica.pushWeights();
            replica.zeroGradients();
            passes = replica.model();
        }
        // Every micro-batch is fetched first: the cross-entropy of the step is the mean over all of its loss tokens,
        // so each micro-batch's mean weighs its share of them (transformers' num_items_in_batch), which for equal
        // windows of packed text is 1/M. The auxiliary loss, a statistic of each pass's routing, weighs 1/M.
        var batches = new ArrayList<Batch>(m);
        long lossTokens = 0;
        for (int micro = 0; micro < m; micro++) {
            Batch batch = source.batch(step, micro, m);
            batches.add(batch);
            lossTokens += batch.lossTokens();
        }
        double ce = 0, aux = 0;
        long tokens = 0;
        var stats = new ArrayList<List<RoutingStats>>();
        moeLayers.forEach(l -> stats.add(new ArrayList<>()));
        for (int micro = 0; micro < m; micro++) {
            Batch batch = batches.get(micro);
            for (int i = 0; i < moeLayers.size(); i++) {
                moeLayers.get(i).reseedNoise(noiseSeed(settings.seed(), step * m + micro, i));
            }
            double share = lossTokens == 0 ? 0 : (double) batch.lossTokens() / lossTokens;
            Transformer on = passes;
            Transformer.Loss l;
            ForwardPass pass;
            try (var scope = MemoryScope.open()) {
                Graph g = Graph.training();
                pass = on.forward(g, batch.inputs(), batch.sequences(), null);
                l = on.loss(g, pass, batch.targets(), batch.tokenRows(), (float) share, 1f / m);
                g.backward(l.objective());
            }
            ce += l.crossEntropy() * share;
            aux += l.auxiliary() / m;
            tokens += batch.tokens();
            for (int i = 0; i < pass.moe().size(); i++) {
                RoutingStats s = pass.moe().get(i).stats();
                stats.get(i).add(s);
                if (balancers.get(i) != null) {
                    balancers.get(i).observe(s);
                }
            }
        }
        double loss = ce + aux;
        if (replica != null) {
            replica.pullGradients();
        }
        // Clipping's factor is applied as AdamW reads each gradient: one pass over the gradients, not two.
        double norm = GradientClipping.globalNorm(List.copyOf(parameters.values()));
        double lr = settings.schedule().at(step);
        optimizer.step(lr, GradientClipping.coefficient(norm, settings.clipNorm()));
        if (replica != null) {
            replica.invalidate();
        }
        for (BiasBalancer b : balancers) {
            if (b != null) {
                b.step();
            }
        }
        var routing = new ArrayList<StepMetrics.LayerRouting>();
        List<Integer> indices = model.moeLayerIndices();
        for (int i = 0; i < stats.size(); i++) {
            routing.add(aggregate(indices.get(i), stats.get(i)));
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        return new StepMetrics(optimizer.steps(), loss, ce, aux, lr, norm, tokens, seconds, routing);
    }

    /** SplitMix64's finaliser over the seed, the micro-batch number and the layer: unrelated generators. */
    static long noiseSeed(long seed, long microBatch, int layer) {
        long z = seed * 0x9E3779B97F4A7C15L + microBatch * 0xD1B54A32D192ED03L + layer + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static StepMetrics.LayerRouting aggregate(int layer, List<RoutingStats> passes) {
        int e = passes.getFirst().experts();
        int[] load = new int[e];
        double dropped = 0, entropy = 0;
        PredictorConfusion predictor = null;
        for (RoutingStats s : passes) {
            for (int i = 0; i < e; i++) {
                load[i] += s.tokensPerExpert()[i];
            }
            if (s.predictor() != null) {
                predictor = predictor == null ? s.predictor() : predictor.plus(s.predictor());
            }
            dropped += s.droppedFraction() / passes.size();
            entropy += s.routerEntropy() / passes.size();
        }
        double mean = 0;
        for (int l : load) {
            mean += l;
        }
        mean /= e;
        double var = 0, max = 0;
        for (int l : load) {
            var += (l - mean) * (l - mean);
            max = Math.max(max, l);
        }
        double cv = mean > 0 ? Math.sqrt(var / e) / mean : 0;
        return new StepMetrics.LayerRouting(layer, load, cv, dropped, mean > 0 ? max / mean - 1 : 0, entropy,
                predictor);
    }

    /**
     * Mean next-token cross-entropy over every loss token of {@code batches}, with the model in inference mode (no
     * noise): each batch's mean weighs its loss tokens.
     */
    public double evaluate(List<Batch> batches) {
        double sum = 0;
        long counted = 0;
        Transformer on = model;
        if (replica != null) {
            replica.pushWeights();
            on = replica.model();
        }
        for (Batch b : batches) {
            try (var scope = MemoryScope.open()) {
                Graph g = Graph.inference();
                ForwardPass pass = on.forward(g, b.inputs(), b.sequences(), null);
                int n = b.lossTokens();
                sum += (double) g.crossEntropy(pass.logits(), b.targets()).value().getFloat(0) * n;
                counted += n;
            }
        }
        return counted == 0 ? Double.NaN : sum / counted;
    }

    /** Where forward and backward run: the host, or the device of the model's copy. */
    public String device() {
        return replica == null ? "cpu" : replica.model().device().name();
    }

    /** The optimiser's moments by "<parameter>.exp_avg" / ".exp_avg_sq", for a checkpoint. */
    public Map<String, Tensor> state() {
        return optimizer.state();
    }

    /** Continues from a checkpoint: the optimiser's moments and its step count. */
    public void restore(Map<String, Tensor> state, long steps) {
        optimizer.restore(state, steps);
    }
}
