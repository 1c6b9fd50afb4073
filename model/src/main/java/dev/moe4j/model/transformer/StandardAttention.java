package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.QkNorm;

/**
 * Multi-head attention with grouped key/value heads and the variations of the supported families, applied in
 * transformers' order: projections (with biases: Qwen2, gpt-oss), q/k RMSNorm per head (Qwen3) or over the
 * whole projection (OLMoE), clamping of q, k and v (OLMoE's clip_qkv), RoPE on the first rotary dimensions of
 * each head, causal attention (within a sliding window on some layers; with per-head sinks in gpt-oss), output
 * projection.
 */
final class StandardAttention implements AttentionBlock {
    private final AttentionConfig.Standard config;
    private final AttentionSpec spec;
    private final QkNorm qkNorm;
    private final float eps;
    private final Rotary rotary;
    private final Var q, k, v, o;
    private final Lora qLora, kLora, vLora, oLora;
    private final Var qBias, kBias, vBias, oBias;
    private final Var qNorm, kNorm;
    private final Var sinks;

    StandardAttention(ModelConfig model, LayerSpec layer, String prefix, WeightSource w, Rotary rotary) {
        this.config = (AttentionConfig.Standard) model.attention();
        int hidden = model.hiddenSize(), heads = config.numHeads(), kvHeads = config.numKvHeads();
        int hd = config.headDim(), qWidth = heads * hd, kvWidth = kvHeads * hd;
        this.spec = AttentionSpec.of(heads, kvHeads, hd).withSlidingWindow(layer.slidingWindow());
        this.qkNorm = model.norms().qkNorm();
        this.eps = (float) model.norms().eps();
        this.rotary = rotary;
        this.q = w.weight(prefix + "q_proj.weight", qWidth, hidden);
        this.k = w.weight(prefix + "k_proj.weight", kvWidth, hidden);
        this.v = w.weight(prefix + "v_proj.weight", kvWidth, hidden);
        this.o = w.weight(prefix + "o_proj.weight", hidden, qWidth);
        this.qLora = w.adapter(prefix + "q_proj.weight", qWidth, hidden);
        this.kLora = w.adapter(prefix + "k_proj.weight", kvWidth, hidden);
        this.vLora = w.adapter(prefix + "v_proj.weight", kvWidth, hidden);
        this.oLora = w.adapter(prefix + "o_proj.weight", hidden, qWidth);
        boolean qkvBias = config.qkvBias();
        this.qBias = qkvBias ? w.weight(prefix + "q_proj.bias", qWidth) : null;
        this.kBias = qkvBias ? w.weight(prefix + "k_proj.bias", kvWidth) : null;
        this.vBias = qkvBias ? w.weight(prefix + "v_proj.bias", kvWidth) : null;
        this.oBias = config.outputBias() ? w.weight(prefix + "o_proj.bias", hidden) : null;
        this.qNorm = switch (qkNorm) {
            case NONE -> null;
            case PER_HEAD -> w.weight(prefix + "q_norm.weight", hd);
            case WHOLE_PROJECTION -> w.weight(prefix + "q_norm.weight", qWidth);
        };
        this.kNorm = switch (qkNorm) {
            case NONE -> null;
            case PER_HEAD -> w.weight(prefix + "k_norm.weight", hd);
            case WHOLE_PROJECTION -> w.weight(prefix + "k_norm.weight", kvWidth);
        };
        this.sinks = config.sinks() ? w.weight(prefix + "sinks", heads) : null;
    }

    @Override
    public Var forward(Graph g, Var x, Batch batch, int layer) {
        Var query = g.linear(x, q, qBias, qLora), key = g.linear(x, k, kBias, kLora);
        Var value = g.linear(x, v, vBias, vLora);
        if (qkNorm != QkNorm.NONE) {
            query = normalise(g, query, qNorm, config.numHeads());
            key = normalise(g, key, kNorm, config.numKvHeads());
        }
        if (config.clipQkv().isPresent()) {
            float clip = (float) config.clipQkv().getAsDouble();
            query = g.clamp(query, clip);
            key = g.clamp(key, clip);
            value = g.clamp(value, clip);
        }
        var table = rotary.table(batch.positionLimit());
        int hd = config.headDim();
        query = batch.rope(g, query, table, rotary.layout(), hd, rotary.rotaryDim());
        key = batch.rope(g, key, table, rotary.layout(), hd, rotary.rotaryDim());
        return g.linear(batch.attend(g, layer, query, key, value, spec, sinks), o, oBias, oLora);
    }

    /** RMSNorm of each head's vector (one weight shared by the heads), or of the whole projection. */
    private Var normalise(Graph g, Var x, Var weight, int heads) {
        if (qkNorm == QkNorm.WHOLE_PROJECTION) {
            return g.rmsNorm(x, weight, eps);
        }
        int rows = x.rows(), hd = config.headDim();
        return g.rmsNorm(x.view(rows * heads, hd), weight, eps).view(rows, heads * hd);
    }

    @Override
    public int keyWidth() {
        return config.numKvHeads() * config.headDim();
    }

    @Override
    public int valueWidth() {
        return keyWidth();
    }
}
