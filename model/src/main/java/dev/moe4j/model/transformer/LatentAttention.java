package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.kernels.AttentionSpec;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.RopeConfig;

/**
 * DeepSeek's multi-head latent attention, as transformers' DeepseekV3Attention computes it. Queries: hidden →
 * q_a_proj (rank qLoraRank) → RMSNorm → q_b_proj → per head [nope | rope] (or q_proj straight from hidden).
 * Keys and values: hidden → kv_a_proj → [latent (kvLoraRank) | one rotary key shared by all heads]; the latent
 * → RMSNorm → kv_b_proj → per head [key nope | value]. RoPE turns only the rope parts; each head's key is
 * [its nope part | the shared rotary key]. Softmax scale 1/√(nope + rope), times YaRN's mscale² when the
 * config scales with YaRN and sets mscale_all_dim.
 */
final class LatentAttention implements AttentionBlock {
    /** DeepseekV3RMSNorm's default: the q_a and kv_a norms are built without the config's rms_norm_eps. */
    private static final float LATENT_NORM_EPS = 1e-6f;

    private final AttentionConfig.Latent config;
    private final AttentionSpec spec;
    private final Rotary rotary;
    private final Var qProj, qA, qABias, qANorm, qB;
    private final Var kvA, kvABias, kvANorm, kvB;
    private final Var o, oBias;
    private final Lora qProjLora, qALora, qBLora, kvALora, kvBLora, oLora;

    LatentAttention(ModelConfig model, String prefix, WeightSource w, Rotary rotary) {
        this.config = (AttentionConfig.Latent) model.attention();
        int hidden = model.hiddenSize(), heads = config.numHeads(), qk = config.qkHeadDim();
        this.rotary = rotary;
        this.spec = new AttentionSpec(heads, heads, qk, config.vHeadDim(), softmaxScale(config, model.rope()), 0);
        boolean bias = config.bias();
        if (config.qLoraRank() > 0) {
            int rank = config.qLoraRank();
            this.qProj = null;
            this.qA = w.weight(prefix + "q_a_proj.weight", rank, hidden);
            this.qABias = bias ? w.weight(prefix + "q_a_proj.bias", rank) : null;
            this.qANorm = w.weight(prefix + "q_a_norm.weight", rank);
            this.qB = w.weight(prefix + "q_b_proj.weight", heads * qk, rank);
            this.qProjLora = null;
            this.qALora = w.adapter(prefix + "q_a_proj.weight", rank, hidden);
            this.qBLora = w.adapter(prefix + "q_b_proj.weight", heads * qk, rank);
        } else {
            this.qProj = w.weight(prefix + "q_proj.weight", heads * qk, hidden);
            this.qProjLora = w.adapter(prefix + "q_proj.weight", heads * qk, hidden);
            this.qALora = null;
            this.qBLora = null;
            this.qA = null;
            this.qABias = null;
            this.qANorm = null;
            this.qB = null;
        }
        int latent = config.kvLoraRank(), rope = config.qkRopeHeadDim();
        this.kvA = w.weight(prefix + "kv_a_proj.weight", latent + rope, hidden);
        this.kvABias = bias ? w.weight(prefix + "kv_a_proj.bias", latent + rope) : null;
        this.kvANorm = w.weight(prefix + "kv_a_norm.weight", latent);
        this.kvB = w.weight(prefix + "kv_b_proj.weight", heads * (config.qkNopeHeadDim() + config.vHeadDim()), latent);
        this.o = w.weight(prefix + "o_proj.weight", hidden, heads * config.vHeadDim());
        this.oBias = bias ? w.weight(prefix + "o_proj.bias", hidden) : null;
        this.kvALora = w.adapter(prefix + "kv_a_proj.weight", latent + rope, hidden);
        this.kvBLora = w.adapter(prefix + "kv_b_proj.weight", heads * (config.qkNopeHeadDim() + config.vHeadDim()),
                latent);
        this.oLora = w.adapter(prefix + "o_proj.weight", hidden, heads * config.vHeadDim());
    }

    static float softmaxScale(AttentionConfig.Latent config, RopeConfig rope) {
        double scale = 1 / Math.sqrt(config.qkHeadDim());
        if (rope.scaling() instanceof RopeConfig.Yarn y && y.mscaleAllDim().orElse(0) != 0 && y.factor() > 1) {
            double mscale = 0.1 * y.mscaleAllDim().getAsDouble() * Math.log(y.factor()) + 1.0;
            scale *= mscale * mscale;
        }
        return (float) scale;
    }

    @Override
    public Var forward(Graph g, Var x, Batch batch, int layer) {
        int rows = x.rows(), heads = config.numHeads();
        int nope = config.qkNopeHeadDim(), rope = config.qkRopeHeadDim(), qk = config.qkHeadDim();
        int latent = config.kvLoraRank(), vDim = config.vHeadDim();
        var table = rotary.table(batch.positionLimit());

        Var q = qProj != null ? g.linear(x, qProj, null, qProjLora)
                : g.linear(g.rmsNorm(g.linear(x, qA, qABias, qALora), qANorm, LATENT_NORM_EPS), qB, null, qBLora);
        Var qHeads = q.view(rows * heads, qk);
        Var qRot = batch.rope(g, g.columns(qHeads, nope, qk).view(rows, heads * rope), table, rotary.layout(), rope,
                rope).view(rows * heads, rope);

        Var compressed = g.linear(x, kvA, kvABias, kvALora);
        Var kv = g.linear(g.rmsNorm(g.columns(compressed, 0, latent), kvANorm, LATENT_NORM_EPS), kvB, null, kvBLora)
                .view(rows * heads, nope + vDim);
        Var kRot = batch.rope(g, g.columns(compressed, latent, latent + rope), table, rotary.layout(), rope, rope);
        // Every head of a token shares its rotary key: gather row t once per head (the backward sums them).
        Var kRotHeads = g.embedding(kRot, repeatEachRow(rows, heads));
        Var value = g.columns(kv, nope, nope + vDim).view(rows, heads * vDim);

        Var query = nope == 0 ? qRot : g.concatColumns(g.columns(qHeads, 0, nope), qRot);
        Var key = nope == 0 ? kRotHeads : g.concatColumns(g.columns(kv, 0, nope), kRotHeads);
        Var out = batch.attend(g, layer, query.view(rows, heads * qk), key.view(rows, heads * qk), value, spec, null);
        return g.linear(out, o, oBias, oLora);
    }

    private static int[] repeatEachRow(int rows, int times) {
        int[] ids = new int[rows * times];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i / times;
        }
        return ids;
    }

    @Override
    public int keyWidth() {
        return config.numHeads() * config.qkHeadDim();
    }

    @Override
    public int valueWidth() {
        return config.numHeads() * config.vHeadDim();
    }
}
