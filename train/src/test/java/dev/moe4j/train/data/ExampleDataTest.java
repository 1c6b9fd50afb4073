package dev.moe4j.train.data;

import dev.moe4j.core.BadInputException;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ExampleDataTest {
    /** Qwen2's chat template (ChatML), as its tokenizer_config.json has it. */
    static final String QWEN2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            + "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
            + "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    /** Mixtral-8x7B-Instruct's template (reduced to what it does for user and assistant turns). */
    static final String MIXTRAL = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
            + "{{ ' [INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token }}"
            + "{% endif %}{% endfor %}";

    @TempDir
    Path dir;

    static Path fixture(String path) {
        try {
            return Path.of(ExampleDataTest.class.getClassLoader().getResource("fixtures/" + path).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static final Tokenizer QWEN_TOKENIZER = Tokenizer.load(fixture("qwen2-moe/tokenizer.json"));
    static final Tokenizer MIXTRAL_TOKENIZER = Tokenizer.load(fixture("mixtral/tokenizer.json"));

    static ExampleData.Sources qwen(String template) {
        return new ExampleData.Sources(QWEN_TOKENIZER, () -> ChatTemplate.of("test", template, Map.of()),
                QWEN_TOKENIZER.tokenId("<|endoftext|>").getAsInt(), 512);
    }

    private List<Example> read(String lines, ExampleData.Sources sources) throws Exception {
        Path f = dir.resolve("data.jsonl");
        Files.writeString(f, lines);
        return ExampleData.read(f, sources);
    }

    private BadInputException refused(String lines, ExampleData.Sources sources) {
        return assertThrows(BadInputException.class, () -> read(lines, sources));
    }

    /** The text of the labelled tokens of an example, in order. */
    static String labelledText(Tokenizer tokenizer, Example e) {
        int[] ids = Arrays.stream(e.labels()).filter(l -> l != Graph.IGNORE).toArray();
        return tokenizer.decode(ids, false);
    }

    @Test
    void messagesAreLabelledOnEveryAssistantTurnWithTheTokenThatEndsIt() throws Exception {
        var examples = read("""
                {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},\
                 {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Green."}]}
                """, qwen(QWEN2));
        Example e = examples.getFirst();
        String text = ChatTemplate.of("t", QWEN2, Map.of()).render(List.of(new ChatTemplate.Message("user", "Name a colour."),
                new ChatTemplate.Message("assistant", "Blue."), new ChatTemplate.Message("user", "Another?"),
                new ChatTemplate.Message("assistant", "Green.")), false);
        assertArrayEquals(QWEN_TOKENIZER.encodeIds(text, false), e.ids(), "the whole render, tokenised without added tokens");
        assertEquals("Blue.<|im_end|>\nGreen.<|im_end|>\n", labelledText(QWEN_TOKENIZER, e));
        // labels are the ids themselves where they count
        for (int i = 0; i < e.length(); i++) {
            assertTrue(e.labels()[i] == Graph.IGNORE || e.labels()[i] == e.ids()[i]);
        }
        assertEquals("data.jsonl:1", e.name());
    }

    @Test
    void templatesWithGenerationBlocksMarkTheAssistantThemselves() throws Exception {
        // the block leaves out the line end after <|im_end|>, which prefix renders would include
        String marked = QWEN2.replace("{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}",
                "{{'<|im_start|>' + message['role'] + '\\n'}}{% if message['role'] == 'assistant' %}{% generation %}"
                        + "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{% else %}"
                        + "{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}");
        String line = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n";
        Example blocks = read(line, qwen(marked)).getFirst(), prefixes = read(line, qwen(QWEN2)).getFirst();
        assertArrayEquals(prefixes.ids(), blocks.ids());
        assertEquals("Hello.<|im_end|>", labelledText(QWEN_TOKENIZER, blocks));
        assertEquals("Hello.<|im_end|>\n", labelledText(QWEN_TOKENIZER, prefixes));
    }

    @Test
    void aTokenAcrossTheStartOfTheReplyIsTheReplysAndTheEndOfSequenceTokenIsLearned() throws Exception {
        // Mixtral's metaspace tokenizer has no pre-tokenizer: ' [/INST] Sure' may merge across the boundary
        var sources = new ExampleData.Sources(MIXTRAL_TOKENIZER,
                () -> ChatTemplate.of("mixtral", MIXTRAL, Map.of("bos_token", "<s>", "eos_token", "</s>")), 2, 512);
        Example e = read("{\"messages\": [{\"role\": \"user\", \"content\": \"Say yes\"}, "
                + "{\"role\": \"assistant\", \"content\": \"Sure, yes.\"}]}\n", sources).getFirst();
        String labelled = labelledText(MIXTRAL_TOKENIZER, e);
        assertTrue(labelled.endsWith("Sure, yes.</s>"), labelled);
        assertFalse(labelled.contains("INST"), labelled);
        assertEquals(2, e.ids()[e.length() - 1]);
        assertEquals(2, e.labels()[e.length() - 1]);
    }

    /**
     * Spans that start and end inside tokens: every token holding one of the span's characters is labelled, as
     * transformers' offset mapping labels them. The expected tokens come from the token strings' lengths (ASCII
     * text through a byte-level BPE: one character per byte, Ġ for a space).
     */
    @Test
    void aBoundaryInsideATokenLabelsEveryTokenThatHoldsACharacterOfTheSpan() {
        String text = "experts route tokens to experts";
        var encoding = QWEN_TOKENIZER.encode(text, false);
        int[] starts = new int[encoding.tokens().size() + 1];
        for (int t = 0; t < encoding.tokens().size(); t++) {
            starts[t + 1] = starts[t] + encoding.tokens().get(t).length();
        }
        assertEquals(text.length(), starts[starts.length - 1]);
        int straddled = 0;
        for (int from = 0; from < text.length(); from++) {
            for (int to = from + 1; to <= text.length(); to++) {
                Example e = ConversationTokens.labelled("x", QWEN_TOKENIZER, text, List.of(new int[] {from, to}));
                for (int t = 0; t < e.length(); t++) {
                    boolean holds = starts[t] < to && starts[t + 1] > from;
                    assertEquals(holds ? e.ids()[t] : Graph.IGNORE, e.labels()[t], "span [" + from + ", " + to + ") token " + t);
                }
                if (Arrays.binarySearch(starts, from) < 0) {
                    straddled++;
                }
            }
        }
        assertTrue(straddled > 0, "some spans start inside a token");
    }

    @Test
    void aTemplateThatRendersPastTurnsDifferentlyIsRefusedWithWhatToDo() {
        // like Qwen3's: the last assistant turn gets an (empty) thinking block that earlier turns lose
        String thinking = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' and loop.last %}"
                + "<think></think>{% endif %}{{ m['content'] }}<|im_end|>\n{% endfor %}"
                + "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        var e = refused("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"},"
                + " {\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"assistant\", \"content\": \"d\"}]}\n", qwen(thinking));
        assertTrue(e.getMessage().contains("data.jsonl: line 1: messages[1]:"), e.getMessage());
        assertTrue(e.getMessage().contains("{% generation %}") && e.getMessage().contains("--chat-template"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }

    @Test
    void promptAndCompletionAreTokenisedApartWithTheLossOnTheCompletionAndItsEnd() throws Exception {
        int eos = QWEN_TOKENIZER.tokenId("<|endoftext|>").getAsInt();
        Example e = read("{\"prompt\": \"The capital of France is\", \"completion\": \" Paris.\"}\n", qwen(QWEN2)).getFirst();
        int[] prompt = QWEN_TOKENIZER.encodeIds("The capital of France is", true);
        int[] completion = QWEN_TOKENIZER.encodeIds(" Paris.", false);
        assertEquals(prompt.length + completion.length + 1, e.length());
        assertArrayEquals(prompt, Arrays.copyOf(e.ids(), prompt.length));
        for (int i = 0; i < e.length(); i++) {
            assertEquals(i < prompt.length ? Graph.IGNORE : e.ids()[i], e.labels()[i], "label " + i);
        }
        assertEquals(eos, e.ids()[e.length() - 1]);
        assertArrayEquals(prompt, e.prompt());
    }

    @Test
    void conversationalPromptAndCompletionLabelWhatTheCompletionAdds() throws Exception {
        Example e = read("{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], "
                + "\"completion\": [{\"role\": \"assistant\", \"content\": \"Hello.\"}]}\n", qwen(QWEN2)).getFirst();
        assertEquals("Hello.<|im_end|>\n", labelledText(QWEN_TOKENIZER, e));
    }

    @Test
    void textIsLearnedWholeAndInputIdsAsTheirLabelsSay() throws Exception {
        var examples = read("""
                {"text": "to be or not", "source": "ignored"}

                {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}
                {"input_ids": [9, 10, 11]}
                """, qwen(QWEN2));
        assertEquals(3, examples.size());
        Example text = examples.get(0);
        assertArrayEquals(text.ids(), text.labels());
        assertEquals(0, text.ids()[text.length() - 1], "the end of text closes it");
        assertEquals("data.jsonl:3", examples.get(1).name());
        assertArrayEquals(new int[] {-100, -100, 7, 8}, examples.get(1).labels());
        assertEquals(2, examples.get(1).lossTokens());
        assertArrayEquals(new int[] {9, 10, 11}, examples.get(2).labels());
        assertEquals(2, examples.get(2).lossTokens(), "the first token is never predicted");
    }

    @Test
    void badLinesAreOneLineErrorsNamingTheFileTheLineAndTheField() {
        var qwen = qwen(QWEN2);
        String file = dir.resolve("data.jsonl").toString();
        Map<String, String> cases = new java.util.LinkedHashMap<>();
        cases.put("{\"text\": \"ok\"}\n{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n", "line 2: messages[0].content: expected a string");
        cases.put("{\"messages\": [{\"content\": \"x\"}]}\n", "line 1: messages[0].role:");
        cases.put("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", "line 1: messages: no assistant message");
        cases.put("{\"messages\": []}\n", "line 1: messages: expected a non-empty list");
        cases.put("{\"prompt\": \"x\"}\n", "line 1: completion: missing");
        cases.put("{\"text\": 5}\n", "line 1: text: expected a string, got number '5'");
        cases.put("{\"input_ids\": [1, 2, 600]}\n", "line 1: input_ids[2]: token id 600 outside the vocabulary [0, 512)");
        cases.put("{\"input_ids\": [1, 2], \"labels\": [1]}\n", "line 1: labels: 1 labels for 2 input_ids");
        cases.put("{\"input_ids\": [1, 2], \"labels\": [2, -100]}\n", "line 1: no token carries a label");
        cases.put("{\"input_ids\": [1, 2.5]}\n", "line 1: input_ids[1]: expected a token id");
        cases.put("{\"input_ids\": [1]}\n", "line 1: an example needs at least 2 tokens");
        cases.put("{\"text\": \"a\"}\n[1, 2]\n", "line 2: expected a JSON object");
        cases.put("{\"txt\": \"a\"}\n", "line 1: expected \"messages\", \"prompt\" and \"completion\", \"text\" or \"input_ids\"; found 'txt'");
        cases.put("{\"text\": \"a\"\n", "line 1: not valid JSON");
        cases.forEach((lines, expected) -> {
            var e = refused(lines, qwen);
            assertTrue(e.getMessage().startsWith(file + ": " + expected.substring(0, expected.indexOf(':') + 1)),
                    e.getMessage());
            assertTrue(e.getMessage().contains(expected), expected + " in: " + e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        });
        var noTokenizer = new ExampleData.Sources(null, () -> {
            throw new AssertionError("not asked for");
        }, -1, 512);
        assertTrue(refused("{\"text\": \"a\"}\n", noTokenizer).getMessage().contains("line 1: text: text needs a tokenizer"));
        Supplier<ChatTemplate> missing = () -> {
            throw new BadInputException("model/tokenizer_config.json has no chat template: give one with --chat-template FILE");
        };
        var e = refused("{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}\n",
                new ExampleData.Sources(QWEN_TOKENIZER, missing, 0, 512));
        assertTrue(e.getMessage().startsWith(file + ": line 1: messages need a chat template: model/tokenizer_config.json"),
                e.getMessage());
    }

    @Test
    void exampleDataIsToldFromArraysOfIdsByItsFirstLine() throws Exception {
        Path objects = dir.resolve("a.jsonl"), arrays = dir.resolve("b.jsonl");
        Files.writeString(objects, "\n  {\"text\": \"x\"}\n");
        Files.writeString(arrays, "[1, 2]\n");
        assertTrue(ExampleData.isExampleData(objects));
        assertFalse(ExampleData.isExampleData(arrays));
    }

    @Test
    void theLastFractionOfExamplesIsTheValidationSplit() {
        var examples = java.util.stream.IntStream.range(0, 10)
                .mapToObj(i -> new Example("e" + i, new int[] {1, 2}, new int[] {1, 2})).toList();
        var parts = ExampleData.split(examples, 0.2);
        assertEquals(List.of("e8", "e9"), parts.get(1).stream().map(Example::name).toList());
        assertEquals(8, parts.get(0).size());
        assertEquals(1, ExampleData.split(examples.subList(0, 2), 0.1).get(1).size(), "at least one of two");
        assertEquals(0, ExampleData.split(examples.subList(0, 1), 0.5).get(1).size(), "none of one");
    }
}
