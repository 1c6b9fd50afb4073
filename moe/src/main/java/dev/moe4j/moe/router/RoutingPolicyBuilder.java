package dev.moe4j.moe.router;

import dev.moe4j.core.BadInputException;
import dev.moe4j.moe.dispatch.Capacity;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.dispatch.Priority;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A {@link RoutingPolicy} from the options people write: the command line's routing flags, the server's
 * {@code moe4j.routing} fields, or route-eval's {@code key=value} policies. Each option is checked as it is set and
 * {@link #build} checks them against each other; every error is one line naming the option as the
 * {@link RoutingPolicy.Naming} spells it.
 */
public final class RoutingPolicyBuilder {
    private final RoutingPolicy.Naming naming;
    private int expertsPerToken;
    private double topP;
    private int minExperts;
    private int maxExperts;
    private double floor;
    private final TreeMap<Integer, TreeSet<Integer>> masks = new TreeMap<>();
    private final TreeMap<Integer, TreeSet<Integer>> forced = new TreeMap<>();
    private Double capacityFactor;
    private Overflow overflow;
    private Priority priority;

    RoutingPolicyBuilder(RoutingPolicy.Naming naming) {
        this.naming = naming;
    }

    private BadInputException bad(String option, String message) {
        return new BadInputException(naming.of(option) + " " + message);
    }

    int integer(String option, String value, int min) {
        try {
            int v = Integer.parseInt(value.trim());
            if (v >= min) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw bad(option, BadInputException.quote(value) + ": expected an integer of " + min + " or more");
    }

    double number(String option, String value) {
        try {
            return Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
            throw bad(option, BadInputException.quote(value) + ": expected a number");
        }
    }

    /** Experts per token; 1 or more (the model's experts are checked by {@link RoutingPolicy#check}). */
    public RoutingPolicyBuilder expertsPerToken(int k) {
        if (k < 1) {
            throw bad("experts-per-token", k + ": expected 1 or more experts per token");
        }
        expertsPerToken = k;
        return this;
    }

    public RoutingPolicyBuilder topP(double p) {
        if (!(p > 0 && p <= 1)) {
            throw bad("expert-top-p", RoutingPolicy.number(p) + ": expected a probability mass in (0, 1]");
        }
        topP = p;
        return this;
    }

    public RoutingPolicyBuilder minExperts(int n) {
        if (n < 1) {
            throw bad("min-experts", n + ": expected 1 or more");
        }
        minExperts = n;
        return this;
    }

    public RoutingPolicyBuilder maxExperts(int n) {
        if (n < 1) {
            throw bad("max-experts", n + ": expected 1 or more");
        }
        maxExperts = n;
        return this;
    }

    public RoutingPolicyBuilder floor(double p) {
        if (!(p > 0 && p < 1)) {
            throw bad("expert-floor", RoutingPolicy.number(p) + ": expected a probability in (0, 1)");
        }
        floor = p;
        return this;
    }

    /** Masks experts: {@code LAYER:E,E,...} (E may be a range A-B; LAYER may be * for every MoE layer), several joined by ';'. */
    public RoutingPolicyBuilder mask(String spec) {
        layerExperts("expert-mask", spec, masks);
        return this;
    }

    public RoutingPolicyBuilder mask(int layer, Collection<Integer> experts) {
        add("expert-mask", layer, experts, masks);
        return this;
    }

    /** Forces experts, in {@link #mask}'s syntax. */
    public RoutingPolicyBuilder force(String spec) {
        layerExperts("force-experts", spec, forced);
        return this;
    }

    public RoutingPolicyBuilder force(int layer, Collection<Integer> experts) {
        add("force-experts", layer, experts, forced);
        return this;
    }

    private void add(String option, int layer, Collection<Integer> experts, TreeMap<Integer, TreeSet<Integer>> into) {
        if (layer < RoutingPolicy.EVERY_LAYER) {
            throw bad(option, "layer " + layer + ": expected a layer index of 0 or more (or * for every layer)");
        }
        for (int x : experts) {
            if (x < 0) {
                throw bad(option, "expert " + x + ": expected an expert index of 0 or more");
            }
        }
        if (experts.isEmpty()) {
            throw bad(option, "layer " + layer + ": no experts given");
        }
        into.computeIfAbsent(layer, l -> new TreeSet<>()).addAll(experts);
    }

    private void layerExperts(String option, String spec, TreeMap<Integer, TreeSet<Integer>> into) {
        String syntax = " (expected LAYER:EXPERTS such as 3:0,5 or *:7, several joined by ';')";
        for (String part : spec.split(";")) {
            String p = part.trim();
            if (p.isEmpty()) {
                continue;
            }
            int colon = p.indexOf(':');
            if (colon <= 0 || colon == p.length() - 1) {
                throw bad(option, BadInputException.quote(p) + ": not LAYER:EXPERTS" + syntax);
            }
            String layerText = p.substring(0, colon).trim();
            int layer;
            if (layerText.equals("*")) {
                layer = RoutingPolicy.EVERY_LAYER;
            } else {
                layer = wholeNumber(option, layerText, p, syntax);
            }
            var experts = new ArrayList<Integer>();
            for (String item : p.substring(colon + 1).split(",")) {
                String t = item.trim();
                int dash = t.indexOf('-', 1);
                if (dash > 0) {
                    int a = wholeNumber(option, t.substring(0, dash), p, syntax);
                    int z = wholeNumber(option, t.substring(dash + 1), p, syntax);
                    if (z < a) {
                        throw bad(option, BadInputException.quote(p) + ": the range " + t + " is empty");
                    }
                    for (int x = a; x <= z; x++) {
                        experts.add(x);
                    }
                } else {
                    experts.add(wholeNumber(option, t, p, syntax));
                }
            }
            add(option, layer, experts, into);
        }
        if (into.isEmpty()) {
            throw bad(option, BadInputException.quote(spec) + ": no experts given" + syntax);
        }
    }

    private int wholeNumber(String option, String text, String part, String syntax) {
        try {
            int v = Integer.parseInt(text.trim());
            if (v >= 0) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw bad(option, BadInputException.quote(part) + ": " + BadInputException.quote(text.trim())
                + " is not an index of 0 or more" + syntax);
    }

    /** Capacity factor: each expert takes at most ceil(factor · assignments / experts) tokens of a pass. */
    public RoutingPolicyBuilder capacityFactor(double factor) {
        if (!(factor > 0 && Double.isFinite(factor))) {
            throw bad("capacity-factor", RoutingPolicy.number(factor) + ": expected a factor > 0");
        }
        capacityFactor = factor;
        return this;
    }

    /** {@code drop} or {@code next-choice} (re-route to the token's next preferred expert with room). */
    public RoutingPolicyBuilder overflow(String value) {
        overflow = switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "drop" -> Overflow.DROP;
            case "next-choice", "reroute", "re-route" -> Overflow.NEXT_CHOICE;
            default -> throw bad("capacity-overflow", BadInputException.quote(value) + ": expected drop or next-choice");
        };
        return this;
    }

    /** {@code position} or {@code score} (batch priority routing). */
    public RoutingPolicyBuilder priority(String value) {
        priority = switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "position" -> Priority.POSITION;
            case "score" -> Priority.SCORE;
            default -> throw bad("capacity-priority", BadInputException.quote(value) + ": expected position or score");
        };
        return this;
    }

    /** The policy, its options checked against each other (against a model: {@link RoutingPolicy#check}). */
    public RoutingPolicy build() {
        if (expertsPerToken > 0 && topP > 0) {
            throw new BadInputException(naming.of("experts-per-token") + " and " + naming.of("expert-top-p")
                    + " both choose how many experts a token takes; give one");
        }
        if (maxExperts > 0 && topP == 0) {
            throw new BadInputException(naming.of("max-experts") + " bounds " + naming.of("expert-top-p")
                    + "; give it with top-p (or use " + naming.of("experts-per-token") + ")");
        }
        if (minExperts > 0 && topP == 0 && floor == 0) {
            throw new BadInputException(naming.of("min-experts") + " bounds " + naming.of("expert-top-p") + " and "
                    + naming.of("expert-floor") + "; give it with one of them");
        }
        if (minExperts > 0 && maxExperts > 0 && minExperts > maxExperts) {
            throw new BadInputException(naming.of("min-experts") + " " + minExperts + " is more than "
                    + naming.of("max-experts") + " " + maxExperts);
        }
        if (capacityFactor == null && (overflow != null || priority != null)) {
            throw new BadInputException(naming.of(overflow != null ? "capacity-overflow" : "capacity-priority") + " applies to a"
                    + " capacity; give " + naming.of("capacity-factor") + " too");
        }
        Capacity capacity = capacityFactor == null ? null : Capacity.factor(capacityFactor, Capacity.Rounding.CEIL, 1)
                .withMinimum(1);
        return new RoutingPolicy(expertsPerToken, topP, minExperts, maxExperts, floor, list(masks), list(forced),
                capacity, overflow == null ? Overflow.DROP : overflow, priority == null ? Priority.POSITION : priority);
    }

    private static List<RoutingPolicy.LayerExperts> list(TreeMap<Integer, TreeSet<Integer>> map) {
        var out = new ArrayList<RoutingPolicy.LayerExperts>();
        map.forEach((layer, experts) -> out.add(new RoutingPolicy.LayerExperts(layer, List.copyOf(experts))));
        return out;
    }

    /**
     * Reads a policy written as space-separated {@code key=value} items, the options' names without dashes or their
     * short forms: {@code k} (experts-per-token), {@code top-p}, {@code min} (min-experts), {@code max}
     * (max-experts), {@code floor} (expert-floor), {@code mask} (expert-mask), {@code force} (force-experts),
     * {@code capacity} (capacity-factor), {@code overflow}, {@code priority}; {@code trained} alone is the trained
     * routing. Example: {@code "top-p=0.8 max=4 mask=3:0,5"}.
     */
    public static RoutingPolicy parse(String spec, String option) {
        String text = spec.trim();
        if (text.isEmpty()) {
            throw new BadInputException(option + ": empty; give a policy such as k=1 or top-p=0.8 (or trained)");
        }
        if (text.equals("trained")) {
            return RoutingPolicy.TRAINED;
        }
        var b = new RoutingPolicyBuilder(o -> option + " " + BadInputException.quote(spec) + ": " + o);
        for (String item : text.split("\\s+")) {
            int eq = item.indexOf('=');
            if (eq <= 0) {
                throw new BadInputException(option + " " + BadInputException.quote(spec) + ": "
                        + BadInputException.quote(item) + " is not key=value (keys: k, top-p, min, max, floor, mask,"
                        + " force, capacity, overflow, priority)");
            }
            String key = item.substring(0, eq), value = item.substring(eq + 1);
            switch (key) {
                case "k", "experts-per-token" -> b.expertsPerToken(b.integer("experts-per-token", value, 1));
                case "top-p", "expert-top-p" -> b.topP(b.number("expert-top-p", value));
                case "min", "min-experts" -> b.minExperts(b.integer("min-experts", value, 1));
                case "max", "max-experts" -> b.maxExperts(b.integer("max-experts", value, 1));
                case "floor", "expert-floor" -> b.floor(b.number("expert-floor", value));
                case "mask", "expert-mask" -> b.mask(value);
                case "force", "force-experts" -> b.force(value);
                case "capacity", "capacity-factor" -> b.capacityFactor(b.number("capacity-factor", value));
                case "overflow", "capacity-overflow" -> b.overflow(value);
                case "priority", "capacity-priority" -> b.priority(value);
                default -> throw new BadInputException(option + " " + BadInputException.quote(spec) + ": unknown key "
                        + BadInputException.quote(key) + " (keys: k, top-p, min, max, floor, mask, force, capacity,"
                        + " overflow, priority)");
            }
        }
        return b.build();
    }
}
