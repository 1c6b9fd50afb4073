package dev.moe4j.moe.router;

/**
 * Group-limited selection (DeepSeek-V2/V3's {@code n_group}, {@code topk_group}): experts are split into
 * {@code groups} equal groups, each group is scored by the sum of its {@code scoredPerGroup} best selection scores
 * (2 in DeepSeek-V3, 1 — the maximum — in DeepSeek-V2), and a token may only choose experts in its
 * {@code topGroups} best groups. This bounds how many devices one token reaches under expert parallelism.
 */
public record GroupLimit(int groups, int topGroups, int scoredPerGroup) {
    /** No limit: one group holding every expert. */
    public static GroupLimit none() {
        return new GroupLimit(1, 1, 1);
    }

    /** DeepSeek-V3's rule: groups scored by the sum of their top-2 scores. */
    public static GroupLimit deepSeekV3(int groups, int topGroups) {
        return new GroupLimit(groups, topGroups, 2);
    }

    public boolean isLimited() {
        return groups > 1 && topGroups < groups;
    }
}
