package dev.moe4j.model.transformer;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.testing.GradCheck;
import dev.moe4j.model.TinyModels;
import dev.moe4j.model.config.ModelConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The inference code is also the training code: in a training graph the same forward pass records backward steps
 * whose gradients agree with finite differences, through attention of both kinds, norms, rope, dense MLPs and the
 * MoE layer. Every expert takes every token (k = E) so that small steps cannot change the routing.
 */
class TransformerTrainingTest {
    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "qwen3_moe|\"num_experts_per_tok\":4,\"num_hidden_layers\":2,\"mlp_only_layers\":[0]|layers.0.attention.q_norm.weight,layers.1.attention.k_proj.weight,layers.1.moe.router.weight,norm.weight",
            "deepseek_v3|\"num_experts_per_tok\":4,\"n_group\":1,\"topk_group\":1,\"num_hidden_layers\":2|layers.0.attention.kv_a_norm.weight,layers.1.attention.kv_b_proj.weight,layers.1.moe.shared_experts.down_proj,layers.0.mlp.up_proj.weight",
            "gpt_oss|\"num_experts_per_tok\":4,\"num_hidden_layers\":2|layers.0.attention.sinks,layers.1.attention.q_proj.bias,layers.0.moe.experts.gate_up_proj_bias,layers.1.moe.router.bias,layers.1.post_attention_norm.weight"})
    void gradientsOfTheTrainingGraphMatchFiniteDifferences(String family, String extra, String weights) {
        ModelConfig config = TinyModels.config(family, extra + ",\"vocab_size\":12");
        Transformer model = new Transformer(config, new InitialWeights(0.3, 4));
        Map<String, Var> parameters = model.parameters();
        List<Var> checked = Arrays.stream(weights.split(",")).map(name -> {
            Var p = parameters.get(name);
            assertTrue(p != null && p.requiresGrad(), name + " is a trainable parameter of " + parameters.keySet());
            return p;
        }).toList();
        int[] tokens = TinyModels.tokens(8, 12, 3);
        GradCheck.check(g -> model.forward(g, tokens, 2, null).logits(), checked, 5);
        // The training graph reaches every parameter.
        Graph g = Graph.training();
        var pass = model.forward(g, tokens, 2, null);
        g.backward(model.crossEntropy(g, pass, tokens, 2));
        parameters.forEach((name, p) -> assertTrue(p.hasGrad(), name + " received a gradient"));
    }
}
