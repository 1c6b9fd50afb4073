package dev.moe4j.train.vision;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.kernels.Activation;
import dev.moe4j.model.vision.VisionConfig;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.expert.ExpertFfn;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.router.ExpertChoiceDecode;
import dev.moe4j.moe.router.GateOrder;

import java.util.Locale;
import java.util.Optional;

/**
 * The vision models of the commands and the experiment, from a handful of choices: the shape, and the router of the
 * MoE layers. Experts are GELU MLPs like the dense layers' (ViT's MLP), so the dense model with MLP width k × expert
 * width computes what a top-k V-MoE computes per patch, the router aside.
 *
 * @param router   none (a dense ViT), topk (V-MoE), expert-choice, soft or dense (every expert on every patch)
 * @param capacity the token-choice capacity factor while training (V-MoE's rule), 0 for dropless; expert choice's
 *                 capacity factor (patches per expert = factor · patches / experts)
 * @param slots    Soft MoE's slots per expert
 */
public record VisionModels(int patch, int width, int layers, int heads, int expertWidth, String router, int experts,
                           int topK, double capacity, Priority priority, int slots, double balance, long seed) {

    public VisionConfig config(int imageSize, int classes) {
        String r = router.toLowerCase(Locale.ROOT);
        if (r.equals("none")) {
            return new VisionConfig(imageSize, 1, patch, width, layers, heads, topK * expertWidth, classes, 0,
                    Optional.empty(), 1e-6, 0.02, seed);
        }
        var b = MoeConfig.builder(width, expertWidth, experts, r.equals("dense") ? experts : topK)
                .ffn(ExpertFfn.plain(Activation.GELU));
        switch (r) {
            case "topk" -> {
                b.router(RouterKind.TOP_K).normalizeTopK(false)
                        .capacity(capacity > 0 ? Capacity.vmoeFactor(capacity) : Capacity.dropless())
                        .overflow(Overflow.DROP).priority(priority);
                // V-MoE's importance loss (its load loss is an expectation over router noise, which these runs
                // do not draw).
                if (balance > 0) {
                    b.loss(ImportanceLoss.ofPaper(GateOrder.SOFTMAX_THEN_TOP_K), balance);
                }
            }
            case "expert-choice" -> b.router(RouterKind.EXPERT_CHOICE).topK(1)
                    .capacity(Capacity.factor(capacity > 0 ? capacity : topK, Capacity.Rounding.CEIL, 1))
                    .expertChoiceDecode(ExpertChoiceDecode.BATCH_TOP_C);
            case "soft" -> b.router(RouterKind.SOFT).topK(1).slotsPerExpert(slots);
            case "dense" -> b.router(RouterKind.DENSE);
            default -> throw new BadInputException("--router: expected none, topk, expert-choice, soft or dense, got '"
                    + router + "'");
        }
        return new VisionConfig(imageSize, 1, patch, width, layers, heads, topK * expertWidth, classes, 2,
                Optional.of(b.build()), 1e-6, 0.02, seed);
    }
}
