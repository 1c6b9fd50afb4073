package dev.moe4j.moe.dispatch;

/** What happens to a token's choice when its expert is full. */
public enum Overflow {
    /** The choice is dropped: the token skips that expert, and the residual connection carries it. */
    DROP,
    /**
     * The choice moves to the token's next preferred expert that still has room, after every token's own top-k
     * choices have been served (so a re-routed choice never displaces a first-hand one).
     */
    NEXT_CHOICE
}
