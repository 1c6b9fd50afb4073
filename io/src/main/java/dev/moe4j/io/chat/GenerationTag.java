package dev.moe4j.io.chat;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;

/**
 * transformers' {@code {% generation %}...{% endgeneration %}} block: it marks the text that the assistant
 * generates, for {@code apply_chat_template(..., return_assistant_tokens_mask=True)} and TRL's assistant-only loss.
 * Rendering a prompt, the block is transparent; while {@link ChatTemplate#renderMarked} renders, its output is put
 * between two private-use characters, which that method removes again and turns into character spans.
 */
final class GenerationTag implements Tag {
    static final char START = '\uE000';
    static final char END = '\uE001';
    private static final ThreadLocal<Boolean> MARKING = ThreadLocal.withInitial(() -> false);

    @Override
    public String getName() {
        return "generation";
    }

    @Override
    public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
        var out = new StringBuilder();
        for (Node child : tagNode.getChildren()) {
            out.append(child.render(interpreter).getValue());
        }
        return MARKING.get() ? START + out.toString() + END : out.toString();
    }

    /** Runs {@code render} with the blocks marked on this thread. */
    static <T> T marking(java.util.function.Supplier<T> render) {
        MARKING.set(true);
        try {
            return render.get();
        } finally {
            MARKING.remove();
        }
    }
}
