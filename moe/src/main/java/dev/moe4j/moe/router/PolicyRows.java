package dev.moe4j.moe.router;

import java.util.List;

/**
 * The routing policies of one inference pass through one MoE layer: rows {@code starts[i]} to {@code starts[i+1]}
 * follow {@code policies.get(i)} (a batch of sequences, each with its own), and {@code layer} is the decoder layer,
 * whose masks and forced experts apply.
 */
public record PolicyRows(int layer, List<RoutingPolicy> policies, int[] starts) {
    public PolicyRows {
        policies = List.copyOf(policies);
        if (starts.length != policies.size() + 1 || starts[0] != 0) {
            throw new IllegalArgumentException(policies.size() + " policies need " + (policies.size() + 1)
                    + " row starts from 0, got " + starts.length);
        }
        for (int i = 0; i < policies.size(); i++) {
            if (starts[i + 1] < starts[i]) {
                throw new IllegalArgumentException("row starts must not decrease: " + java.util.Arrays.toString(starts));
            }
        }
        starts = starts.clone();
    }

    /** Every one of {@code rows} rows follows {@code policy}. */
    public static PolicyRows of(int layer, RoutingPolicy policy, int rows) {
        return new PolicyRows(layer, List.of(policy), new int[] {0, rows});
    }

    /** Rows in all. */
    public int rows() {
        return starts[starts.length - 1];
    }

    /** Whether every row routes as trained (then the router takes its own path, untouched). */
    public boolean allTrained() {
        return policies.stream().allMatch(RoutingPolicy::isTrained);
    }

    /** Whether every row is routed by its own scores alone (no policy bounds a capacity). */
    public boolean routesEachTokenAlone() {
        return policies.stream().allMatch(RoutingPolicy::routesEachTokenAlone);
    }
}
