package dev.moe4j.model.family;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.SpecialTokens;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/** The config.json fields that every family reads the same way (PreTrainedConfig's own fields among them). */
final class HfCommon {
    private static final Map<String, DType> DTYPES = Map.of(
            "float32", DType.F32, "bfloat16", DType.BF16, "float16", DType.F16,
            "float64", DType.F64, "float8_e4m3fn", DType.F8_E4M3, "float8_e5m2", DType.F8_E5M2);

    private HfCommon() {
    }

    /**
     * bos_token_id, eos_token_id (an id or a list of ids) and pad_token_id, with the family's defaults when
     * absent; null means the model has none.
     */
    static SpecialTokens tokens(ConfigFields c, OptionalInt bos, OptionalInt eos, OptionalInt pad) {
        List<Integer> eosIds;
        if (!c.has("eos_token_id")) {
            eosIds = eos.isPresent() ? List.of(eos.getAsInt()) : List.of();
        } else if (c.json().get("eos_token_id").isArray()) {
            eosIds = c.intListOr("eos_token_id", List.of());
        } else {
            OptionalInt one = c.optionalInt("eos_token_id", OptionalInt.empty());
            eosIds = one.isPresent() ? List.of(one.getAsInt()) : List.of();
        }
        return new SpecialTokens(c.optionalInt("bos_token_id", bos), eosIds, c.optionalInt("pad_token_id", pad));
    }

    static void writeTokens(SpecialTokens tokens, ObjectNode out) {
        putOptional(out, "bos_token_id", tokens.bos());
        switch (tokens.eos().size()) {
            case 0 -> out.putNull("eos_token_id");
            case 1 -> out.put("eos_token_id", tokens.eos().getFirst());
            default -> tokens.eos().forEach(out.putArray("eos_token_id")::add);
        }
        putOptional(out, "pad_token_id", tokens.pad());
    }

    private static void putOptional(ObjectNode out, String name, OptionalInt value) {
        if (value.isPresent()) {
            out.put(name, value.getAsInt());
        } else {
            out.putNull(name);
        }
    }

    /** The weights' dtype: "dtype" (transformers 5) or "torch_dtype" (4.x); float32 when neither is given. */
    static DType dtype(ConfigFields c) {
        String field = c.aliased("dtype", "torch_dtype");
        String name = c.stringOr(field, "float32");
        DType dtype = DTYPES.get(name.replaceFirst("^torch\\.", ""));
        if (dtype == null) {
            throw c.error(field, "names an unknown dtype '" + name + "'; expected one of " + DTYPES.keySet());
        }
        return dtype;
    }

    static void writeDtype(DType dtype, ObjectNode out) {
        String name = DTYPES.entrySet().stream().filter(e -> e.getValue() == dtype).map(Map.Entry::getKey)
                .findFirst().orElseThrow(() -> new BadInputException("dtype " + dtype
                        + " has no transformers name; use F32, BF16 or F16"));
        out.put("torch_dtype", name);
    }

    /** hidden_act: the activation of the gated MLPs. */
    static Activation activation(ConfigFields c, String fallback) {
        String name = c.stringOr("hidden_act", fallback);
        return switch (name) {
            case "silu", "swish" -> Activation.SILU;
            case "gelu" -> Activation.GELU;
            case "gelu_pytorch_tanh", "gelu_new", "gelu_fast" -> Activation.GELU_TANH;
            case "relu" -> Activation.RELU;
            default -> throw c.error("hidden_act", "'" + name
                    + "' is not supported; supported: silu, gelu, gelu_pytorch_tanh, relu");
        };
    }

    static String activationName(Activation activation) {
        return switch (activation) {
            case SILU -> "silu";
            case GELU -> "gelu";
            case GELU_TANH -> "gelu_pytorch_tanh";
            case RELU -> "relu";
        };
    }

    /** quantization_config.quant_method, for reports. */
    static Optional<String> quantization(ConfigFields c) {
        return c.object("quantization_config").map(q -> q.stringOr("quant_method", "unknown"));
    }

    /**
     * num_experts_per_tok: the experts each token is routed to, at most the routed experts there are
     * ({@code expertsField} names the field that counts them).
     */
    static int expertsPerToken(ConfigFields c, int fallback, int experts, String expertsField) {
        int k = c.positiveIntOr("num_experts_per_tok", fallback);
        if (k > experts) {
            throw c.error("num_experts_per_tok", "(" + k + ") must not exceed " + expertsField + " (" + experts + ")");
        }
        return k;
    }

    /** num_key_value_heads: absent or null means one per query head, as transformers' configs set it. */
    static int kvHeads(ConfigFields c, int heads, OptionalInt fallback) {
        OptionalInt kv = c.optionalInt("num_key_value_heads", fallback);
        int value = kv.orElse(heads);
        if (value <= 0 || heads % value != 0) {
            throw c.error("num_key_value_heads", "must be positive and divide num_attention_heads (" + heads
                    + "), got " + value);
        }
        return value;
    }

    /** head_dim: absent gives the family's default, null (or no default) hidden_size / num_attention_heads. */
    static int headDim(ConfigFields c, int hidden, int heads, OptionalInt fallback) {
        OptionalInt headDim = c.optionalInt("head_dim", fallback);
        if (headDim.isPresent()) {
            if (headDim.getAsInt() <= 0) {
                throw c.error("head_dim", "must be positive, got " + headDim.getAsInt());
            }
            return headDim.getAsInt();
        }
        if (hidden % heads != 0) {
            throw c.error("num_attention_heads", "(" + heads + ") must divide hidden_size (" + hidden
                    + ") when head_dim is not given");
        }
        return hidden / heads;
    }


    /** The start of every config.json moe4j writes. */
    static ObjectNode header(ObjectNode out, String architecture, String modelType) {
        out.putArray("architectures").add(architecture);
        out.put("model_type", modelType);
        return out;
    }

    static BadInputException cannot(String family, String what) {
        return new BadInputException("cannot save as " + family + ": its config.json cannot express " + what);
    }

    static void require(boolean condition, String family, String what) {
        if (!condition) {
            throw cannot(family, what);
        }
    }

    /** The standard attention of a config, or an error saying the family needs it. */
    static AttentionConfig.Standard standardAttention(ModelConfig config, String family) {
        if (!(config.attention() instanceof AttentionConfig.Standard a)) {
            throw cannot(family, "latent attention (a deepseek_v3 feature)");
        }
        return a;
    }
}
