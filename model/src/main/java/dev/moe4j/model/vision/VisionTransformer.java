package dev.moe4j.model.vision;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.router.PolicyRows;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A ViT encoder over moe4j's graph operations and MoE layer:
 * <pre>
 * patches → linear + learned position embedding → L × [ h = x + attention(RMSNorm(x));  out = h + mlp(RMSNorm(h)) ]
 *         → RMSNorm → mean over the patches → linear head → class logits
 * </pre>
 * Attention is bidirectional (every patch sees the whole image); the MLP of every {@code moeEvery}-th layer is the
 * moe module's {@link MoeLayer} with the image's patches as its tokens, the others a GELU MLP. Pooling is the global
 * average of the patches rather than a class token: one operation fewer, and the ViT paper's appendix finds the two
 * on par once each has its own learning rate. RMSNorm stands where ViT has LayerNorm because it is the norm the engine has, with its backward.
 *
 * <p>An MoE layer routes the whole batch's patches together, as V-MoE routes a device's group of images: capacity,
 * batch priority and expert choice compete over the batch. Soft MoE's slots mix one image's patches, as in the
 * Soft MoE paper.
 */
public final class VisionTransformer {
    private final VisionConfig config;
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();
    private final Var patchWeight, patchBias, positions, finalNorm, headWeight, headBias;
    private final List<Layer> layers = new ArrayList<>();
    private final AttentionSpec attention;

    /** What one encoder layer holds; {@code moe} is null for a dense layer, {@code up}/{@code down} null for MoE. */
    private record Layer(Var norm1, Var q, Var k, Var v, Var o, Var norm2, Var up, Var upBias, Var down, Var downBias,
                         MoeLayer moe) {
    }

    /** A model with fresh weights drawn from {@code config.seed()}. */
    public VisionTransformer(VisionConfig config) {
        this.config = config;
        var random = new SplittableRandom(config.seed());
        int d = config.hidden(), m = config.mlpWidth();
        patchWeight = normal("patch_embed.weight", random, d, config.patchValues());
        patchBias = zeros("patch_embed.bias", d);
        positions = normal("position_embed", random, config.patches(), d);
        for (int i = 0; i < config.layers(); i++) {
            String p = "layers." + i + ".";
            Var norm1 = ones(p + "attention_norm.weight", d);
            Var q = normal(p + "attention.q_proj.weight", random, d, d);
            Var k = normal(p + "attention.k_proj.weight", random, d, d);
            Var v = normal(p + "attention.v_proj.weight", random, d, d);
            Var o = normal(p + "attention.o_proj.weight", random, d, d);
            Var norm2 = ones(p + "mlp_norm.weight", d);
            if (config.isMoe(i)) {
                // Each MoE layer draws its own weights from a seed of its own.
                var moeConfig = config.moe().orElseThrow().toBuilder().seed(config.seed() * 1_000_003L + i).build();
                MoeLayer moe = MoeLayer.initialize(moeConfig);
                moe.parameters().forEach(par -> parameters.put(p + "moe." + par.name(), par));
                moe.buffers().forEach((name, t) -> buffers.put(p + "moe." + name, t));
                layers.add(new Layer(norm1, q, k, v, o, norm2, null, null, null, null, moe));
            } else {
                layers.add(new Layer(norm1, q, k, v, o, norm2, normal(p + "mlp.up_proj.weight", random, m, d),
                        zeros(p + "mlp.up_proj.bias", m), normal(p + "mlp.down_proj.weight", random, d, m),
                        zeros(p + "mlp.down_proj.bias", d), null));
            }
        }
        finalNorm = ones("norm.weight", d);
        headWeight = normal("head.weight", random, config.classes(), d);
        headBias = zeros("head.bias", config.classes());
        attention = AttentionSpec.of(config.heads(), config.heads(), d / config.heads()).bidirectional();
    }

    private Parameter add(String name, Tensor value) {
        var p = new Parameter(name, value);
        parameters.put(name, p);
        return p;
    }

    private Parameter normal(String name, SplittableRandom random, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (random.nextGaussian() * config.initStd());
        }
        return add(name, Tensor.of(w, rows, cols));
    }

    private Parameter zeros(String name, int size) {
        return add(name, Tensor.zeros(size));
    }

    private Parameter ones(String name, int size) {
        Tensor t = Tensor.zeros(size);
        t.fill(1f);
        return add(name, t);
    }

    public VisionConfig config() {
        return config;
    }

    /** Every trainable parameter by its checkpoint name. */
    public Map<String, Parameter> parameters() {
        return parameters;
    }

    /** State saved beside the weights that is not trained by gradients (expert-choice thresholds, selection bias). */
    public Map<String, Tensor> buffers() {
        return buffers;
    }

    /** The MoE layers in layer order. */
    public List<MoeLayer> moeLayers() {
        return layers.stream().filter(l -> l.moe() != null).map(Layer::moe).toList();
    }

    /**
     * What a forward pass produced: the logits [images, classes] as a value of its graph, and each MoE layer's
     * passes (routing and statistics; when training, their auxiliary losses' gradients are part of the graph).
     */
    public record Pass(Var logits, List<MoePass> moe) {
        /** Σ over the MoE layers of their weighted auxiliary losses. */
        public double auxLoss() {
            return moe.stream().flatMap(m -> m.parts().stream()).mapToDouble(MoeResult::auxLoss).sum();
        }

        /** The encoder-layer index of each MoE layer. */
        public List<Integer> moeLayers() {
            return moe.stream().map(MoePass::layer).toList();
        }
    }

    /**
     * One MoE layer's work in a pass: one part over the whole batch's patches, or for Soft MoE one part per image,
     * each over {@code tokensPerPart} consecutive patch rows.
     */
    public record MoePass(int layer, List<MoeResult> parts, int tokensPerPart) {
        public MoePass {
            parts = List.copyOf(parts);
        }
    }

    /**
     * The forward pass over {@code images} [n, imageSize² · channels] (rows of pixels, channels last, already
     * normalised), with the MoE layers routing as trained.
     */
    public Pass forward(Graph g, Tensor images) {
        return forward(g, images, RoutingPolicy.TRAINED);
    }

    /**
     * The forward pass with the MoE layers' token-choice routing changed by {@code policy} at inference (a capacity
     * and priority other than trained: V-MoE's evaluation at lower capacity factors).
     */
    public Pass forward(Graph g, Tensor images, RoutingPolicy policy) {
        int n = images.rows(), tokens = config.patches();
        Var x = g.linear(Var.constant(Patches.of(images, config)), patchWeight, patchBias);
        int[] patchIndex = new int[n * tokens];
        for (int r = 0; r < patchIndex.length; r++) {
            patchIndex[r] = r % tokens;
        }
        x = g.add(x, g.embedding(positions, patchIndex));
        float eps = (float) config.normEps();
        var moe = new ArrayList<MoePass>();
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            Var a = g.rmsNorm(x, l.norm1(), eps);
            Var attended = g.attention(g.matmul(a, l.q()), g.matmul(a, l.k()), g.matmul(a, l.v()), n, attention, null);
            Var h = g.add(x, g.matmul(attended, l.o()));
            Var b = g.rmsNorm(h, l.norm2(), eps);
            if (l.moe() == null) {
                Var up = g.activation(Activation.GELU, g.linear(b, l.up(), l.upBias()));
                x = g.add(h, g.linear(up, l.down(), l.downBias()));
            } else {
                if (l.moe().config().router() == RouterKind.SOFT) {
                    x = g.add(h, softMoe(g, l.moe(), b, n, tokens, i, moe));
                    continue;
                }
                PolicyRows rows = policy.isTrained() ? null : PolicyRows.of(i, policy, n * tokens);
                MoeLayer.GraphOutput out = l.moe().forward(g, b, tokens, rows);
                moe.add(new MoePass(i, List.of(out.result()), n * tokens));
                x = g.add(h, out.output());
            }
        }
        Var pooled = g.meanOfGroups(g.rmsNorm(x, finalNorm, eps), n);
        return new Pass(g.linear(pooled, headWeight, headBias), moe);
    }

    /**
     * Soft MoE over each image alone, as the paper mixes each image's patches into its slots: otherwise an image's
     * class would depend on the other images of its batch.
     */
    private static Var softMoe(Graph g, MoeLayer layer, Var x, int images, int tokens, int index,
                               List<MoePass> results) {
        var outputs = new ArrayList<Var>(images);
        var parts = new ArrayList<MoeResult>(images);
        for (int i = 0; i < images; i++) {
            MoeLayer.GraphOutput out = layer.forward(g, g.rows(x, i * tokens, (i + 1) * tokens), tokens);
            outputs.add(out.output());
            parts.add(out.result());
        }
        results.add(new MoePass(index, parts, tokens));
        return g.concatRows(outputs);
    }
}
