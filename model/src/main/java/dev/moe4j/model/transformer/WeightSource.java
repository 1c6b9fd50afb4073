package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Var;

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
 * layers.N.moe.experts.E.{gate,up,down}_proj.weight                        ({@link ExpertStorage#SEPARATE})
 * layers.N.moe.experts.{gate_up_proj,down_proj,gate_up_proj_bias,down_proj_bias}  ({@link ExpertStorage#STACKED},
 *                                                                          {@link ExpertStorage#TRANSPOSED})
 * layers.N.moe.shared_experts.{gate,up,down}_proj.weight  or  layers.N.moe.shared_experts.{gate_up_proj,down_proj}
 * </pre>
 */
public interface WeightSource {
    /** The weight called {@code name}, which must have {@code shape}. */
    Var weight(String name, int... shape);

    /** How this source holds the routed and shared experts. */
    ExpertStorage expertStorage();
}
