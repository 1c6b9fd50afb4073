package dev.moe4j.cli;

import dev.moe4j.model.LanguageModel;
import dev.moe4j.moe.router.RoutingPolicy;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;

/**
 * The routing policy flags shared by generate, chat, score, serve and bench generate: how a trained MoE's router
 * scores become choices (the moe module's {@link RoutingPolicy}). Without any, the model routes as trained.
 */
public final class RoutingOptions {
    @Option(names = "--experts-per-token", paramLabel = "K", order = 200,
            description = "experts each token takes, fewer or more than trained; the weights follow the family"
                    + " (renormalised over the K where it renormalises, raw probabilities where it does not)")
    Integer expertsPerToken;

    @Option(names = "--expert-top-p", paramLabel = "P", order = 201,
            description = "dynamic routing: each token takes experts in the router's order until their probability"
                    + " mass reaches P (between --min-experts and --max-experts)")
    Double topP;

    @Option(names = "--min-experts", paramLabel = "N", order = 202,
            description = "at least N experts per token with --expert-top-p or --expert-floor (default 1)")
    Integer minExperts;

    @Option(names = "--max-experts", paramLabel = "N", order = 203,
            description = "at most N experts per token with --expert-top-p (default: the trained k)")
    Integer maxExperts;

    @Option(names = "--expert-floor", paramLabel = "P", order = 204,
            description = "drop chosen experts whose router probability is under P, keeping at least one")
    Double floor;

    @Option(names = "--expert-mask", paramLabel = "LAYER:EXPERTS", order = 205,
            description = "remove experts from a layer's router, as if pruned: 3:0,5 (layer 3, experts 0 and 5),"
                    + " *:7 (every MoE layer), 2:0-3; repeat or join with ';'")
    List<String> masks = new ArrayList<>();

    @Option(names = "--force-experts", paramLabel = "LAYER:EXPERTS", order = 206,
            description = "experts every token takes in a layer (they count towards K), in --expert-mask's syntax")
    List<String> forced = new ArrayList<>();

    @Option(names = "--capacity-factor", paramLabel = "F", order = 207,
            description = "bound each expert to ceil(F x choices / experts) tokens of a forward pass; the tokens of"
                    + " a pass (a prompt, or sequences decoded together) compete for the room")
    Double capacityFactor;

    @Option(names = "--capacity-overflow", paramLabel = "drop|next-choice", order = 208,
            description = "with --capacity-factor: a choice that finds its expert full is dropped (default) or"
                    + " re-routed to the token's next preferred expert with room")
    String overflow;

    @Option(names = "--capacity-priority", paramLabel = "position|score", order = 209,
            description = "with --capacity-factor: tokens claim room in position order (default) or by their"
                    + " router's top probability")
    String priority;

    /** The policy the flags describe (each flag checked on its own and against the others, not yet the model). */
    public RoutingPolicy policy() {
        var b = RoutingPolicy.builder(RoutingPolicy.Naming.flags());
        if (expertsPerToken != null) {
            b.expertsPerToken(expertsPerToken);
        }
        if (topP != null) {
            b.topP(topP);
        }
        if (minExperts != null) {
            b.minExperts(minExperts);
        }
        if (maxExperts != null) {
            b.maxExperts(maxExperts);
        }
        if (floor != null) {
            b.floor(floor);
        }
        masks.forEach(b::mask);
        forced.forEach(b::force);
        if (capacityFactor != null) {
            b.capacityFactor(capacityFactor);
        }
        if (overflow != null) {
            b.overflow(overflow);
        }
        if (priority != null) {
            b.priority(priority);
        }
        return b.build();
    }

    /** The policy, checked against {@code model}. */
    public RoutingPolicy policyFor(LanguageModel model) {
        RoutingPolicy p = policy();
        model.checkRouting(p, RoutingPolicy.Naming.flags());
        return p;
    }
}
