package dev.moe4j.moe.dispatch;

/** The order in which tokens claim expert slots when capacity is bounded. */
public enum Priority {
    /** By position in the batch: late tokens are the ones dropped (Switch, GShard). */
    POSITION,
    /**
     * By the token's largest router probability, descending (batch priority routing, V-MoE): the tokens dropped at
     * capacity are those the router is least sure of. Ties keep position order.
     */
    SCORE
}
