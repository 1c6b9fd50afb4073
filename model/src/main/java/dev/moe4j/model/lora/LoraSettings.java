package dev.moe4j.model.lora;

import dev.moe4j.core.BadInputException;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * How new LoRA adapters are made (PEFT's LoraConfig, the fields moe4j uses): rank r, lora_alpha, the places they
 * go ({@code --lora-targets}), rank-stabilised scaling, and the seed of their initial values.
 *
 * @param targets attention projections by their module names (q_proj, k_proj, v_proj, o_proj; DeepSeek's
 *                q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj), and {@code experts} (one adapter per expert on
 *                the fused gate_up_proj and on down_proj), {@code shared_experts} (gate_proj, up_proj, down_proj),
 *                {@code router}
 */
public record LoraSettings(int rank, double alpha, List<String> targets, boolean rsLora, long seed) {
    /** The attention projections' module names across the families. */
    public static final List<String> ATTENTION = List.of("q_proj", "k_proj", "v_proj", "o_proj", "q_a_proj", "q_b_proj",
            "kv_a_proj_with_mqa", "kv_b_proj");

    public LoraSettings {
        if (rank <= 0) {
            throw new BadInputException("--lora-rank must be positive, got " + rank);
        }
        if (!(alpha > 0) || !Double.isFinite(alpha)) {
            throw new BadInputException("--lora-alpha must be positive, got " + alpha);
        }
        targets = List.copyOf(targets);
        if (targets.isEmpty()) {
            throw new BadInputException("--lora-targets: name at least one of " + String.join(", ", known()));
        }
        for (String t : targets) {
            if (!known().contains(t)) {
                throw new BadInputException("--lora-targets: unknown target '" + t + "' (expected "
                        + String.join(", ", known()) + ")");
            }
        }
    }

    /** PEFT's scaling: lora_alpha / r, or lora_alpha / √r for rank-stabilised LoRA. */
    public float scale() {
        return (float) (rsLora ? alpha / Math.sqrt(rank) : alpha / rank);
    }

    /** A comma-separated --lora-targets value as a list, each word once, in the order given. */
    public static List<String> parseTargets(String csv) {
        Set<String> out = new LinkedHashSet<>();
        for (String part : csv.split(",")) {
            String t = part.trim().toLowerCase(Locale.ROOT);
            if (!t.isEmpty()) {
                out.add(t);
            }
        }
        return new ArrayList<>(out);
    }

    private static List<String> known() {
        var all = new ArrayList<>(ATTENTION);
        all.addAll(AdapterSite.GROUPS);
        return all;
    }
}
