package dev.moe4j.model.generate;

/** Hears a reply as it is generated, to stream it to a terminal or a client. */
@FunctionalInterface
public interface GenerationListener {
    /** Nothing to hear. */
    GenerationListener NONE = (text, position) -> {
    };

    /**
     * Text that became final when the token at {@code position} (in the whole sequence, prompt included) was
     * generated. Text held back for a possible stop string or an unfinished character comes with a later token.
     */
    void onText(String text, int position);
}
