package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Lora;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.moe.expert.ExpertLora;

/**
 * Where a {@link Transformer} gets its weights, asked for by moe4j's parameter names and the shapes the config
 * implies: the memory-mapped tensors of a checkpoint, or fresh trainable ones. Asking is also checking: a source
 * refuses a weight that is missing or of another shape or type, so a model that builds can run.
 *
 * <p>moe4j's names (a family's {@code TensorNames} maps them to its checkpoint's names and back):
 * <pre>
 * embed_tokens.weight  norm.weight  lm_head.weight
 * layers.N.input_norm.weight  layers.N.post_attention_norm.weight
 * layers.N.attention.{q,k,v,o}_proj.{weight,bias}  layers.N.attention.{q,k}_norm.weight  layers.N.attention.sinks
 * layers.N.attention.{q_a_proj,q_b_proj,kv_a_proj,kv_b_proj}.weight  layers.N.attention.{q_a,kv_a}_norm.weight
 * layers.N.mlp.{gate,up,down}_proj.weight                                  (a dense layer)
 * layers.N.moe.router.{weight,bias,selection_bias}  layers.N.moe.shared_expert_gate.weight
 * layers.N.moe.router.predictor.{hidden,out}.{weight,bias}               (an expert-choice predictor)
 * layers.N.moe.experts.E.{gate,up,down}_proj.weight                        ({@link ExpertStorage#SEPARATE})
 * layers.N.moe.experts.{gate_up_proj,down_proj,gate_up_proj_bias,down_proj_bias}  ({@link ExpertStorage#STACKED},
 *                                                                          {@link ExpertStorage#TRANSPOSED})
 * layers.N.moe.shared_experts.{gate,up,down}_proj.weight  or  layers.N.moe.shared_experts.{gate_up_proj,down_proj}
 * </pre>
 *
 * <p>A source may also hand out LoRA adapters beside the weights ({@link #adapter}, {@link #expertAdapter}): the
 * model asks for one wherever it multiplies by a weight that could carry one, and uses what it gets. Adapters are
 * named after their weight: {@code layers.N.attention.q_proj.lora_a} and {@code .lora_b},
 * {@code layers.N.moe.router.lora_a}, {@code layers.N.moe.experts.gate_up_proj.lora_a}, ...
 */
public interface WeightSource {
    /** The weight called {@code name}, which must have {@code shape}. */
    Var weight(String name, int... shape);

    /** How this source holds the routed and shared experts. */
    ExpertStorage expertStorage();

    /**
     * The LoRA adapter on weight {@code name} [out, in] (a [r, in], b [out, r]), or null: none there. The router's is
     * asked for as {@code layers.N.moe.router.weight}.
     */
    default Lora adapter(String name, int out, int in) {
        return null;
    }

    /**
     * Per-expert LoRA adapters on a projection of {@code experts} experts, named as its stacked weight
     * ({@code layers.N.moe.experts.gate_up_proj}, {@code .gate_proj}, {@code .up_proj}, {@code .down_proj}; likewise
     * under {@code shared_experts}), W_e being [out, in] whatever the storage; or null: none there.
     */
    default ExpertLora expertAdapter(String name, int experts, int out, int in) {
        return null;
    }
}
