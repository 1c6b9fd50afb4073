package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A conversation as a training example: rendered by the chat template and tokenised as one text, as transformers'
 * {@code apply_chat_template(tokenize=True)} does (no special tokens added: the template writes its own), with
 * labels on what the assistant says and nowhere else, as TRL's {@code assistant_only_loss}.
 *
 * <p>Where the assistant speaks is found in the rendered text, two ways:
 * <ul>
 *   <li>a template with {@code {% generation %}} blocks marks it itself; this is what transformers'
 *       {@code return_assistant_tokens_mask} and so TRL use;</li>
 *   <li>any other template is rendered once per assistant message: the conversation up to that message with the
 *       generation prompt ends where the reply starts, and the conversation through it ends where the reply (with
 *       whatever the template closes a turn with, such as {@code <|im_end|>\n}) ends. Both renders must be prefixes
 *       of the whole conversation's; a template that renders an earlier turn differently once later turns follow
 *       (Qwen3's, which drops past turns' thinking) is refused with a line that asks for a template with
 *       generation blocks.</li>
 * </ul>
 * A token carries a label when it holds a character of the assistant's text (transformers maps its spans to
 * tokens by their character offsets the same way). moe4j's tokenizer keeps no offsets, so a boundary at character
 * b is found by tokenising the text before b: where that agrees with the whole text's tokens, the boundary falls
 * between tokens; where tokens straddle b (rare: templates put special tokens or line ends there), the whole
 * text's tokens from the first that differs are measured by the length of their decoded text.
 */
final class ConversationTokens {
    private ConversationTokens() {
    }

    /** Labels on every assistant message's text. {@code where} prefixes messages ("file: line N: "). */
    static Example assistantOnly(String name, String where, ChatTemplate template, Tokenizer tokenizer,
                                 List<ChatTemplate.Message> messages) {
        ChatTemplate.Marked whole = render(where, template, messages);
        var spans = new ArrayList<int[]>();
        if (template.marksGeneration()) {
            spans.addAll(whole.generationSpans());
        } else {
            for (int i = 0; i < messages.size(); i++) {
                if (!messages.get(i).role().equals("assistant")) {
                    continue;
                }
                String before = prefix(where, template, messages.subList(0, i), true, whole.text(), i);
                String through = prefix(where, template, messages.subList(0, i + 1), false, whole.text(), i);
                spans.add(new int[] {before.length(), Math.max(before.length(), through.length())});
            }
        }
        if (spans.stream().allMatch(s -> s[0] == s[1])) {
            throw new BadInputException(where + "messages: the chat template renders no text for the assistant, so "
                    + "there is nothing to learn");
        }
        return labelled(name, tokenizer, whole.text(), spans);
    }

    /** Labels on everything the completion's messages add after the prompt's generation prompt. */
    static Example completionOnly(String name, String where, ChatTemplate template, Tokenizer tokenizer,
                                  List<ChatTemplate.Message> prompt, List<ChatTemplate.Message> completion) {
        var all = new ArrayList<>(prompt);
        all.addAll(completion);
        String whole = render(where, template, all).text();
        String before = render(where, template, prompt, true);
        if (!whole.startsWith(before)) {
            throw new BadInputException(where + "prompt: the chat template renders the prompt with its generation "
                    + "prompt differently from the start of prompt + completion, so the completion cannot be found");
        }
        return labelled(name, tokenizer, whole, List.of(new int[] {before.length(), whole.length()}));
    }

    private static String prefix(String where, ChatTemplate template, List<ChatTemplate.Message> messages,
                                 boolean generationPrompt, String whole, int message) {
        String text = render(where, template, messages, generationPrompt);
        if (!whole.startsWith(text)) {
            throw new BadInputException(where + "messages[" + message + "]: the chat template renders the "
                    + "conversation " + (generationPrompt ? "before" : "through") + " this assistant message "
                    + "differently from the start of the whole conversation, so its reply cannot be found by "
                    + "rendering; give a template whose assistant text is marked with {% generation %} blocks "
                    + "(--chat-template FILE)");
        }
        return text;
    }

    private static ChatTemplate.Marked render(String where, ChatTemplate template, List<ChatTemplate.Message> messages) {
        try {
            return template.renderMarked(messages, false);
        } catch (BadInputException e) {
            throw new BadInputException(where + "messages: " + e.getMessage());
        }
    }

    private static String render(String where, ChatTemplate template, List<ChatTemplate.Message> messages,
                                 boolean generationPrompt) {
        try {
            return template.render(messages, generationPrompt);
        } catch (BadInputException e) {
            throw new BadInputException(where + "messages: " + e.getMessage());
        }
    }

    /** The text's tokens, labelled where a token holds a character of one of {@code spans}. */
    static Example labelled(String name, Tokenizer tokenizer, String text, List<int[]> spans) {
        int[] ids = tokenizer.encodeIds(text, false);
        int[] labels = new int[ids.length];
        Arrays.fill(labels, Graph.IGNORE);
        for (int[] span : spans) {
            if (span[0] >= span[1]) {
                continue;
            }
            int from = firstTokenAt(tokenizer, text, ids, span[0]);
            int to = tokensBefore(tokenizer, text, ids, span[1]);
            for (int t = from; t < to; t++) {
                labels[t] = ids[t];
            }
        }
        return new Example(name, ids, labels);
    }

    /** The index of the token that holds character {@code at}: how many tokens lie wholly before it. */
    static int firstTokenAt(Tokenizer tokenizer, String text, int[] ids, int at) {
        return at == 0 ? 0 : around(tokenizer, text, ids, at)[0];
    }

    /** How many tokens hold a character before {@code end}. */
    static int tokensBefore(Tokenizer tokenizer, String text, int[] ids, int end) {
        return end >= text.length() ? ids.length : around(tokenizer, text, ids, end)[1];
    }

    /**
     * {tokens wholly before character b, tokens that begin before it}. The text before b, tokenised alone, agrees
     * with the whole text's tokens up to some token; when it agrees throughout, b falls between tokens. Otherwise
     * the tokens from there on are measured against the rest of the text before b, both as the tokenizer decodes
     * them (a decoder that drops a leading space drops it from both).
     */
    private static int[] around(Tokenizer tokenizer, String text, int[] ids, int b) {
        int[] before = tokenizer.encodeIds(text.substring(0, b), false);
        int common = commonPrefix(before, ids);
        if (common == before.length) {
            return new int[] {common, common};
        }
        int rest = tokenizer.decode(Arrays.copyOfRange(before, common, before.length), false).length();
        int complete = common, begun = Math.min(ids.length, common + 1);
        for (int k = common + 1; k <= ids.length; k++) {
            int covered = tokenizer.decode(Arrays.copyOfRange(ids, common, k), false).length();
            if (covered <= rest) {
                complete = k;
            }
            if (covered >= rest) {
                break;
            }
            begun = Math.min(ids.length, k + 1);
        }
        return new int[] {complete, begun};
    }

    private static int commonPrefix(int[] a, int[] b) {
        int n = Math.min(a.length, b.length), i = 0;
        while (i < n && a[i] == b[i]) {
            i++;
        }
        return i;
    }
}
