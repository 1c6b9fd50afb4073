package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.GluParams;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.MoeLayer;
import dev.moe4j.moe.MoeResult;

/** One pre-norm decoder layer: x + attention(norm(x)), then h + feed-forward(norm(h)), dense or MoE. */
final class DecoderLayer {
    private final int index;
    private final float eps;
    private final Var inputNorm;
    private final Var postAttentionNorm;
    private final AttentionBlock attention;
    private final DenseMlp mlp;
    private final MoeBlock moe;

    /**
     * @param moeSource the source itself, unwrapped: an MoE layer of fresh weights initialises itself
     * @param moe       what the MoE layers compute on their own (the model may add losses across layers)
     */
    DecoderLayer(ModelConfig config, int index, WeightSource w, WeightSource moeSource, Rotary rotary, MoeConfig moe) {
        this.index = index;
        this.eps = (float) config.norms().eps();
        String prefix = "layers." + index + ".";
        int hidden = config.hiddenSize();
        LayerSpec spec = config.layers().get(index);
        this.inputNorm = w.weight(prefix + "input_norm.weight", hidden);
        this.attention = switch (config.attention()) {
            case AttentionConfig.Standard s -> new StandardAttention(config, spec, prefix + "attention.", w, rotary);
            case AttentionConfig.Latent l -> new LatentAttention(config, prefix + "attention.", w, rotary);
        };
        this.postAttentionNorm = w.weight(prefix + "post_attention_norm.weight", hidden);
        if (spec.moe()) {
            this.mlp = null;
            this.moe = new MoeBlock(moe, index, prefix + "moe.", moeSource);
        } else {
            this.mlp = new DenseMlp(hidden, config.denseIntermediateSize(),
                    new GluParams.Gated(config.activation(), GluParams.Layout.HALVES), prefix + "mlp.", w);
            this.moe = null;
        }
    }

    int index() {
        return index;
    }

    AttentionBlock attention() {
        return attention;
    }

    /** The MoE block, or null for a dense layer. */
    MoeBlock moe() {
        return moe;
    }

    /** What a layer computed: its output, and its MoE layer's pass (null for a dense layer). */
    record Output(Var hidden, MoeResult moe) {
    }

    Output forward(Graph g, Var x, Batch batch) {
        Var h = g.add(x, attention.forward(g, g.rmsNorm(x, inputNorm, eps), batch, index));
        Var normed = g.rmsNorm(h, postAttentionNorm, eps);
        if (mlp != null) {
            return new Output(g.add(h, mlp.forward(g, normed)), null);
        }
        MoeLayer.GraphOutput out = moe.forward(g, normed, batch.sequenceLength(), batch.policies(index));
        return new Output(g.add(h, out.output()), out.result());
    }
}
