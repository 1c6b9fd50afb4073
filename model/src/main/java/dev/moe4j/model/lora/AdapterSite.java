package dev.moe4j.model.lora;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.config.AttentionConfig;
import dev.moe4j.model.config.LayerSpec;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import dev.moe4j.model.family.HfFamily;
import dev.moe4j.model.transformer.ExpertStorage;

import java.util.ArrayList;
import java.util.List;

/**
 * One place of a model where a LoRA adapter can sit, by moe4j's name and by PEFT's: PEFT names an adapter after the
 * module of transformers 5's model tree it wraps ({@code model.layers.0.self_attn.q_proj}), and for a parameter
 * wrapped in place ({@code target_parameters}) after the module holding it, with {@code base_layer} inserted once
 * for each other parameter of that module wrapped after it.
 *
 * @param name     moe4j's name of the adapted weight without {@code .weight}: {@code layers.0.attention.q_proj},
 *                 {@code layers.0.moe.router}, {@code layers.0.moe.experts.gate_up_proj}; its adapter's matrices are
 *                 {@code name.lora_a} and {@code name.lora_b}
 * @param target   the {@code --lora-targets} word that selects it: the module's own name for attention projections
 *                 (as PEFT's target_modules), or {@code experts}, {@code shared_experts}, {@code router}
 * @param kind     how PEFT wraps it there
 * @param module   the module path in transformers 5's model (for parameters, the module holding them)
 * @param parameter the wrapped parameter's name for {@link Kind#ROUTER} and {@link Kind#EXPERTS}, else null
 * @param expert   for {@link Kind#EXPERT}, which expert's module it is; else −1
 * @param transposed for {@link Kind#EXPERTS}: the parameter is stored [E, in, out] (gpt-oss), not [E, out, in]
 */
public record AdapterSite(String name, String target, Kind kind, String module, String parameter, int expert,
                          boolean transposed) {
    /** How PEFT adapts the weight. */
    public enum Kind {
        /** An nn.Linear module (attention projections, a shared expert's projections): lora_A [r, in], lora_B [out, r]. */
        LINEAR,
        /** The router's 2-D weight parameter, wrapped in place: laid out as a Linear's. */
        ROUTER,
        /**
         * A fused 3-D expert parameter [E, d1, d2] wrapped in place: lora_A [r·E, d1] with expert e's rows
         * e·r .. e·r + r − 1, lora_B [d2, r·E] with expert e's columns e, E + e, 2E + e, ... (PEFT's ParamWrapper).
         */
        EXPERTS,
        /**
         * One expert's own nn.Linear (transformers 4's per-expert modules, as older adapters name them): read into the
         * stacked adapter's expert {@link #expert}; moe4j writes the fused layout instead.
         */
        EXPERT
    }

    /** The --lora-targets words that are not module names. */
    public static final List<String> GROUPS = List.of("experts", "shared_experts", "router");

    /** Every site of a model of {@code config}, layer by layer. */
    public static List<AdapterSite> of(ModelConfig config) {
        HfFamily family = HfFamilies.find(config.family()).orElseThrow(() -> new BadInputException(
                "LoRA: no Hugging Face family '" + config.family() + "'"));
        ExpertStorage storage = family.tensorNames().experts();
        var out = new ArrayList<AdapterSite>();
        for (int n = 0; n < config.numLayers(); n++) {
            String layer = "layers." + n + ".";
            List<String> projections = switch (config.attention()) {
                case AttentionConfig.Standard s -> List.of("q_proj", "k_proj", "v_proj", "o_proj");
                case AttentionConfig.Latent l -> l.qLoraRank() > 0
                        ? List.of("q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj", "o_proj")
                        : List.of("q_proj", "kv_a_proj", "kv_b_proj", "o_proj");
            };
            for (String p : projections) {
                String name = layer + "attention." + p;
                String module = module(family, name + ".weight");
                out.add(new AdapterSite(name, module.substring(module.lastIndexOf('.') + 1), Kind.LINEAR, module, null,
                        -1, false));
            }
            LayerSpec spec = config.layers().get(n);
            if (!spec.moe() || config.moe().isEmpty()) {
                continue;
            }
            var moe = config.moe().get();
            String router = family.transformersName(layer + "moe.router.weight");
            out.add(new AdapterSite(layer + "moe.router", "router", Kind.ROUTER,
                    router.substring(0, router.lastIndexOf('.')), "weight", -1, false));
            boolean transposed = storage == ExpertStorage.TRANSPOSED;
            for (String p : List.of("gate_up_proj", "down_proj")) {
                String fused = family.transformersName(layer + "moe.experts." + p);
                out.add(new AdapterSite(layer + "moe.experts." + p, "experts", Kind.EXPERTS,
                        fused.substring(0, fused.lastIndexOf('.')), p, -1, transposed));
            }
            if (storage == ExpertStorage.SEPARATE) {
                for (int e = 0; e < moe.experts(); e++) {
                    for (String p : List.of("gate_proj", "up_proj", "down_proj")) {
                        out.add(new AdapterSite(layer + "moe.experts." + p, "experts", Kind.EXPERT,
                                module(family, layer + "moe.experts." + e + "." + p + ".weight"), null, e, false));
                    }
                }
            }
            if (moe.sharedIntermediate() > 0) {
                if (storage == ExpertStorage.SEPARATE) {
                    for (String p : List.of("gate_proj", "up_proj", "down_proj")) {
                        String name = layer + "moe.shared_experts." + p;
                        out.add(new AdapterSite(name, "shared_experts", Kind.LINEAR, module(family, name + ".weight"),
                                null, -1, false));
                    }
                } else {
                    for (String p : List.of("gate_up_proj", "down_proj")) {
                        String fused = family.transformersName(layer + "moe.shared_experts." + p);
                        out.add(new AdapterSite(layer + "moe.shared_experts." + p, "shared_experts", Kind.EXPERTS,
                                fused.substring(0, fused.lastIndexOf('.')), p, -1, transposed));
                    }
                }
            }
        }
        return out;
    }

    private static String module(HfFamily family, String weight) {
        String name = family.transformersName(weight);
        return name.substring(0, name.length() - ".weight".length());
    }

    /** What PEFT's target_modules or target_parameters lists for this site: the path below model.layers.N. */
    String targetEntry() {
        String path = kind == Kind.LINEAR ? module : module + "." + parameter;
        // Attention projections by their own names (PEFT matches a module name's last parts); the rest by their path.
        return kind == Kind.LINEAR && !target.equals("shared_experts") ? target
                : path.replaceFirst("^model\\.layers\\.\\d+\\.", "");
    }
}
