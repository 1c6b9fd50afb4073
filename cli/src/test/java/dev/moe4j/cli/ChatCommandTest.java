package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.generate.SequenceCache;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code moe4j chat} driven through stdin, with the mixtral fixture's tokenizer and Mixtral's real chat template
 * ([INST] ... [/INST]), and the toy model standing in for the weights.
 */
class ChatCommandTest {
    @TempDir
    Path dir;

    private final Cli.ToyModels toys = new Cli.ToyModels();
    private final String model = Cli.resource("models/mixtral").toString();
    private final Tokenizer tokenizer = Tokenizer.load(Cli.resource("models/mixtral/tokenizer.json"));
    private final ChatTemplate template = ChatTemplate.load(Cli.resource("models/mixtral/tokenizer_config.json"));

    private int[] prompt(ChatTemplate.Message... messages) {
        return tokenizer.encodeIds(template.render(List.of(messages), true), false);
    }

    /**
     * The whole prompt of each turn, as the model's state held it after the turn's prefill: the positions kept from
     * before and the tokens fed. A chat turn's prefill feeds at least the new user message, more than one token;
     * decoding feeds one at a time.
     */
    private List<int[]> turnPrompts() {
        var prompts = new ArrayList<int[]>();
        int[] sequence = new int[0];
        var model = toys.last();
        for (int i = 0; i < model.calls.size(); i++) {
            int start = model.calls.get(i)[0];
            int[] tokens = model.fed.get(i);
            sequence = TokenIds.concat(Arrays.copyOf(sequence, start), tokens);
            if (tokens.length > 1) {
                prompts.add(sequence);
            }
        }
        return prompts;
    }

    /** The first position and the length of each turn's prefill. */
    private List<List<Integer>> prefills() {
        var model = toys.last();
        return model.calls.stream().filter(c -> c[1] > 1).map(c -> List.of(c[0], c[1])).toList();
    }

    /** What the toy model writes after {@code last}: (5t + 3) mod 512 each time, up to n tokens or its EOS (2). */
    private static int[] chain(int last, int n) {
        var out = new ArrayList<Integer>();
        for (int i = 0; i < n; i++) {
            last = (last * 5 + 3) % 512;
            if (last == 2) {
                break;
            }
            out.add(last);
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private static ChatTemplate.Message user(String s) {
        return new ChatTemplate.Message("user", s);
    }

    private static ChatTemplate.Message assistant(String s) {
        return new ChatTemplate.Message("assistant", s);
    }

    @Test
    void eachTurnRendersTheWholeConversationWithTheChatTemplate() {
        var r = Cli.run(toys, "hello\nand again\n", false, "chat", "--model", model, "--max-tokens", "4");
        assertEquals(0, r.status(), r.err());
        List<String> replies = r.out().lines().toList();
        assertEquals(2, replies.size(), r.out());
        List<int[]> prompts = turnPrompts();
        assertEquals(2, prompts.size());
        assertArrayEquals(prompt(user("hello")), prompts.get(0));
        assertArrayEquals(prompt(user("hello"), assistant(replies.get(0)), user("and again")), prompts.get(1));
        assertTrue(r.err().contains("(4 tokens, max tokens;"), r.err());
    }

    @Test
    void aTurnFeedsOnlyWhatTheConversationAddedToTheKeptCache() {
        var r = Cli.run(toys, "hello\nand again\n", false, "chat", "--model", model, "--max-tokens", "4");
        assertEquals(0, r.status(), r.err());
        List<String> replies = r.out().lines().toList();
        int[] first = prompt(user("hello"));
        int[] second = prompt(user("hello"), assistant(replies.get(0)), user("and again"));
        // turn 1 left its prompt and the 3 reply tokens it fed (the 4th was chosen, never fed) in the cache; the
        // reply re-tokenised from its text need not be those ids, so only the identical prefix is kept
        var fed = toys.last().fed;
        int[] held = TokenIds.concat(TokenIds.concat(first, fed.get(1)), TokenIds.concat(fed.get(2), fed.get(3)));
        int reused = SequenceCache.commonPrefix(held, second);
        assertTrue(reused >= first.length - 1, "at least turn 1's prompt less its last token: " + reused);
        assertTrue(reused < held.length, "with this tokenizer the re-read reply differs from the generated ids");
        assertEquals(List.of(List.of(0, first.length), List.of(reused, second.length - reused)), prefills());
        assertTrue(r.err().contains("prompt " + first.length + " tokens, 0 of them reused;"), r.err());
        assertTrue(r.err().contains("prompt " + second.length + " tokens, " + reused + " of them reused;"), r.err());

        var whole = Cli.run(toys, "hello\nand again\n", false, "chat", "--model", model, "--max-tokens", "4",
                "--no-cache-reuse");
        assertEquals(r.out(), whole.out(), "the same replies");
        assertEquals(List.of(List.of(0, first.length), List.of(0, second.length)), prefills());
        assertTrue(whole.err().contains("prompt " + second.length + " tokens, 0 of them reused;"), whole.err());
    }

    @Test
    void resetForgetsTheConversationAndExitEndsTheChat() {
        var r = Cli.run(toys, "hello\n/reset\nfresh start\n/exit\nnever read\n", false, "chat", "--model", model,
                "--max-tokens", "3");
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("(conversation cleared)"), r.out());
        List<int[]> prompts = turnPrompts();
        assertEquals(2, prompts.size());
        assertArrayEquals(prompt(user("fresh start")), prompts.get(1));
        assertEquals(0, prefills().get(1).getFirst(), "the kept cache was cleared too");
    }

    @Test
    void aSystemMessageOpensEveryConversation() {
        var r = Cli.run(toys, "hi\n", false, "chat", "--model", model, "--max-tokens", "2", "--system", "Be brief.");
        assertEquals(0, r.status(), r.err());
        assertArrayEquals(prompt(new ChatTemplate.Message("system", "Be brief."), user("hi")), turnPrompts().get(0));
    }

    @Test
    void anUnknownCommandIsNamedAndTheChatGoesOn() {
        var r = Cli.run(toys, "/help\nhi\n", false, "chat", "--model", model, "--max-tokens", "2");
        assertEquals(0, r.status());
        assertTrue(r.err().contains("moe4j: unknown command /help (commands: /reset, /exit)"), r.err());
        assertEquals(1, turnPrompts().size());
    }

    @Test
    void aTurnTooLongForTheContextIsAnErrorAndTheChatGoesOn() {
        String longMessage = "word ".repeat(200);
        var r = Cli.run(toys, longMessage + "\nshort\n", false, "chat", "--model", model, "--max-tokens", "2");
        assertEquals(0, r.status());
        assertTrue(r.err().contains("moe4j: error: the prompt has "), r.err());
        assertTrue(r.err().contains("(config.json max_position_embeddings)"), r.err());
        assertArrayEquals(prompt(user("short")), turnPrompts().getFirst(), "the failed turn left no trace");
    }

    @Test
    void theTerminalGetsAPromptAndAGreeting() {
        var r = Cli.run(toys, "hi\n", true, "chat", "--model", model, "--max-tokens", "2");
        assertTrue(r.out().startsWith("> "), r.out());
        assertTrue(r.err().contains("/reset forgets the conversation, /exit ends it"), r.err());
    }

    /**
     * A template that writes harmony channels (as gpt-oss's) makes the chat read replies with their special tokens;
     * the toy model writes no channels, so its reply is shown whole, as plain content, turn after turn.
     */
    @Test
    void aChannelWritingTemplateReadsRepliesWithTheirSpecialTokens() throws IOException {
        Path template = dir.resolve("harmony.jinja");
        // short (the fixture's context is 128 positions); its channel markup appears where a reply had reasoning
        Files.writeString(template, "{% for m in messages %}{{ m.role }}: {% if m.thinking %}<|channel|>analysis"
                + "<|message|>{{ m.thinking }}<|end|>{% endif %}{{ m.content }} {% endfor %}assistant:");
        var r = Cli.run(toys, "hello\nand again\n", false, "chat", "--model", model, "--max-tokens", "4",
                "--template", template.toString());
        assertEquals(0, r.status(), r.err());
        assertFalse(r.err().contains("error"), r.err());
        var replies = r.out().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(2, replies.size(), r.out());
        int[] ids = tokenizer.encodeIds(ChatTemplate.of("t", Files.readString(template), java.util.Map.of())
                .render(List.of(new ChatTemplate.Message("user", "hello")), true), false);
        assertEquals(tokenizer.decode(chain(ids[ids.length - 1], 4), false), replies.getFirst());
    }

    @Test
    void aModelWithoutAChatTemplateNeedsTemplateFile() throws IOException {
        Path folder = Cli.copyModel("mixtral", dir);
        Files.delete(folder.resolve("tokenizer_config.json"));
        var r = Cli.run(toys, "hi\n", false, "chat", "--model", folder.toString());
        assertEquals(2, r.status());
        assertEquals("moe4j: error: " + folder + ": no tokenizer_config.json, so no chat template; give one with"
                + " --template FILE\n", r.err());
        assertTrue(toys.opened.isEmpty(), "the weights were not opened");

        Files.writeString(folder.resolve("tokenizer_config.json"), "{\"bos_token\": \"<s>\"}");
        r = Cli.run(toys, "hi\n", false, "chat", "--model", folder.toString());
        assertEquals(2, r.status());
        assertTrue(r.err().contains("chat_template: missing") && r.err().contains("--template FILE"), r.err());

        Path jinja = dir.resolve("plain.jinja");
        Files.writeString(jinja, "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                + "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}");
        r = Cli.run(toys, "hi\n", false, "chat", "--model", folder.toString(), "--template", jinja.toString(),
                "--max-tokens", "2");
        assertEquals(0, r.status(), r.err());
        assertArrayEquals(tokenizer.encodeIds("<s>user: hi\nassistant:", false), turnPrompts().getFirst());
    }

    @Test
    void aTemplateWithASyntaxErrorStopsTheChatBeforeTheFirstTurnNamingItsFile() throws IOException {
        Path folder = Cli.copyModel("mixtral", dir);
        Path config = folder.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"chat_template\": \"{% for m in messages %}{{ m.content }}\"}");
        var r = Cli.run(toys, "hi\n", false, "chat", "--model", folder.toString());
        assertEquals(2, r.status(), r.err());
        assertEquals("", r.out());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("moe4j: error: chat template of " + config + ": ")
                && r.err().contains("Missing end tag: endfor"), r.err());
        assertTrue(toys.opened.isEmpty(), "the weights were not opened");

        Path jinja = dir.resolve("broken.jinja");
        Files.writeString(jinja, "{% if add_generation_prompt %}ok{% else %}{{ messages[0].content + }}{% endif %}");
        r = Cli.run(toys, "hi\n", false, "chat", "--model", folder.toString(), "--template", jinja.toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().startsWith("moe4j: error: chat template of " + jinja + ": "), r.err());
    }

    @Test
    void theChatTraceNumbersTurnsAndTracesEachPositionOnce() throws IOException {
        Path file = dir.resolve("chat.jsonl");
        var r = Cli.run(toys, "hello\nmore\n", false, "chat", "--model", model, "--max-tokens", "3",
                "--trace-experts", file.toString());
        assertEquals(0, r.status(), r.err());
        List<JsonNode> lines = Files.readAllLines(file).stream().map(l -> Json.parse(l, "line")).toList();
        List<JsonNode> first = lines.stream().filter(o -> o.get("turn").asInt() == 1).toList();
        List<JsonNode> second = lines.stream().filter(o -> o.get("turn").asInt() == 2).toList();
        assertEquals(first.size() + second.size(), lines.size());
        // turn 1: every position of its prompt and reply, each once per layer
        int[] turn1 = new int[first.size() / 2];
        for (int i = 0; i < first.size(); i++) {
            assertEquals(i / 2, first.get(i).get("position").asInt());
            turn1[i / 2] = first.get(i).get("token_id").asInt();
        }
        // turn 2 re-reads the conversation: what it shares with turn 1 is not traced again
        int[] turn2 = turnPrompts().get(1);
        int shared = 0;
        while (shared < Math.min(turn1.length, turn2.length) && turn1[shared] == turn2[shared]) {
            shared++;
        }
        assertTrue(shared > 0);
        assertEquals(shared, second.getFirst().get("position").asInt());
        for (int i = 0; i < second.size(); i++) {
            assertEquals(shared + i / 2, second.get(i).get("position").asInt());
        }
    }
}
