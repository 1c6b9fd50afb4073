package dev.moe4j.io.chat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.moe4j.core.BadInputException;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real chat templates of Mixtral-8x7B-Instruct, Qwen2, Qwen3, OLMoE-Instruct, DeepSeek (R1, the V3 family's
 * template) and gpt-oss render a conversation exactly as expected.json says (made by
 * scripts/make_chat_fixtures.py; see that script for how).
 */
class ChatTemplateTest {
    static Path resource(String name) {
        try {
            return Path.of(ChatTemplateTest.class.getResource("/chat/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static final Clock PINNED = Clock.fixed(LocalDateTime.of(2025, 8, 5, 12, 0).toInstant(ZoneOffset.UTC), ZoneOffset.UTC);

    static List<ChatTemplate.Message> messages(JsonNode array) {
        var out = new ArrayList<ChatTemplate.Message>();
        for (JsonNode m : array) {
            var fields = new java.util.LinkedHashMap<String, Object>();
            m.fields().forEachRemaining(f -> {
                if (!f.getKey().equals("role") && !f.getKey().equals("content")) fields.put(f.getKey(), plain(f.getValue()));
            });
            out.add(new ChatTemplate.Message(m.get("role").asText(), m.get("content").asText(), fields));
        }
        return out;
    }

    /** JSON as the plain maps, lists, strings and numbers a caller would pass. */
    static Object plain(JsonNode n) {
        return new ObjectMapper().convertValue(n, Object.class);
    }

    @TestFactory
    Stream<DynamicTest> realTemplatesRenderLikeTransformers() throws IOException {
        JsonNode expected = new ObjectMapper().readTree(resource("expected.json").toFile());
        var tests = new ArrayList<DynamicTest>();
        for (JsonNode c : expected.get("cases")) {
            String name = c.get("model").asText() + " " + c.get("conversation").asText()
                    + (c.get("add_generation_prompt").asBoolean() ? " +generation prompt" : "");
            tests.add(DynamicTest.dynamicTest(name, () -> {
                var template = ChatTemplate.load(resource(c.get("config").asText())).withClock(PINNED);
                var msgs = messages(expected.get("conversations").get(c.get("conversation").asText()));
                Map<String, Object> extra = c.has("tools") ? Map.of("tools", plain(c.get("tools"))) : Map.of();
                assertEquals(c.get("expected").asText(), template.render(msgs, c.get("add_generation_prompt").asBoolean(), extra));
            }));
        }
        return tests.stream();
    }

    @Test
    void raiseExceptionBecomesABadInputWithTheTemplatesMessage() {
        var mixtral = ChatTemplate.load(resource("mixtral.tokenizer_config.json"));
        var e = assertThrows(BadInputException.class, () -> mixtral.render(List.of(
                new ChatTemplate.Message("user", "hi"), new ChatTemplate.Message("user", "again")), true));
        assertTrue(e.getMessage().contains("conversation roles must alternate user/assistant"), e.getMessage());
        assertTrue(e.getMessage().contains("mixtral.tokenizer_config.json"), e.getMessage());
    }

    @Test
    void namedTemplatesAreChosenByName() {
        var config = resource("gpt-oss.tokenizer_config.json");
        assertEquals(ChatTemplate.load(config).text(), ChatTemplate.load(config, "tool_use").text());
        assertThrows(BadInputException.class, () -> ChatTemplate.load(config, "nope"));
    }

    @Test
    void templateVariablesPassThrough() {
        var qwen3 = ChatTemplate.load(resource("qwen3.tokenizer_config.json"));
        String out = qwen3.render(List.of(new ChatTemplate.Message("user", "hi")), true, Map.of("enable_thinking", false));
        assertEquals("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", out);
    }

    /**
     * A template with transformers' {@code {% generation %}} blocks (as TRL's assistant-only loss needs them)
     * renders as the same template without them, and says where each block's text lies.
     */
    @Test
    void generationBlocksAreTransparentAndMarkTheAssistantsText() throws IOException {
        String plain = Files.readString(resource("qwen2.jinja")).strip();
        String marked = plain.replace("{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}",
                "{{'<|im_start|>' + message['role'] + '\\n'}}{% if message['role'] == 'assistant' %}{% generation %}"
                        + "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{% else %}"
                        + "{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}");
        assertTrue(!marked.equals(plain), "the Qwen2 template was rewritten");
        var withBlocks = ChatTemplate.of("marked", marked, Map.of());
        var without = ChatTemplate.of("plain", plain, Map.of());
        var chat = List.of(new ChatTemplate.Message("user", "Hi"), new ChatTemplate.Message("assistant", "Hello."),
                new ChatTemplate.Message("user", "Bye"), new ChatTemplate.Message("assistant", "Bye!"));
        String expected = without.render(chat, false);
        assertEquals(expected, withBlocks.render(chat, false));
        ChatTemplate.Marked m = withBlocks.renderMarked(chat, false);
        assertEquals(expected, m.text());
        assertEquals(List.of("Hello.<|im_end|>", "Bye!<|im_end|>"),
                m.generationSpans().stream().map(s -> m.text().substring(s[0], s[1])).toList());
        assertTrue(withBlocks.marksGeneration());
        assertFalse(without.marksGeneration());
        assertEquals(List.of(), without.renderMarked(chat, false).generationSpans());
    }

    @Test
    void toolSchemasAreWrittenAsPythonJsonDumps() {
        var t = ChatTemplate.of("test", "{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}", Map.of());
        var tool = new java.util.LinkedHashMap<String, Object>();
        tool.put("name", "weather");
        tool.put("city", "Zürich \"old\"\n");
        tool.put("days", List.of(1, 2.5, true));
        String out = t.render(List.of(), false, Map.of("tools", List.of(tool)));
        assertEquals("[{\"name\": \"weather\", \"city\": \"Zürich \\\"old\\\"\\n\", \"days\": [1, 2.5, true]}]|{\n"
                + "  \"name\": \"weather\",\n  \"city\": \"Zürich \\\"old\\\"\\n\",\n  \"days\": [\n    1,\n    2.5,\n    true\n  ]\n}", out);
    }

    @Test
    void pythonStringMethodsBehaveAsInPython() {
        var t = ChatTemplate.of("test", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a</t>b</t>c'.split('</t>')[-1] }}"
                + "|{{ 'abc'.startswith('ab') }}|{{ ', '.join(['a','b']) }}|{{ 'a b  c'.split() | length }}", Map.of());
        assertEquals("a b|a|c|true|a, b|3", t.render(List.of(), false));
    }

    @TempDir
    Path dir;

    @Test
    void aConfigWithoutTemplateIsNamed() throws IOException {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"bos_token\": \"<s>\"}");
        var e = assertThrows(BadInputException.class, () -> ChatTemplate.load(config));
        assertTrue(e.getMessage().startsWith(config.toString()) && e.getMessage().contains("chat_template"), e.getMessage());
        Files.writeString(dir.resolve("chat_template.jinja"), "{{ bos_token }}{{ messages[0].content }}");
        assertEquals("<s>x", ChatTemplate.load(config).render(List.of(new ChatTemplate.Message("user", "x")), false));
    }

    /** A tokenizer_config.json holding {@code template} as its chat_template. */
    private Path configWith(String template) throws IOException {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, new ObjectMapper().createObjectNode().put("chat_template", template).toString());
        return config;
    }

    @Test
    void aTemplateWithASyntaxErrorIsRefusedWhenLoadedNamingTheFileAndTheError() throws IOException {
        Map<String, String> broken = Map.of(
                "{% for m in messages %}{{ m.content }}", "Missing end tag: endfor",
                "{% for m in messages %}{{ m.content }}{% endfor %}{% nosuchtag %}", "Unknown tag: nosuchtag",
                // a branch the first turn does not take: found anyway
                "{% if add_generation_prompt %}ok{% else %}{{ messages[0].content + }}{% endif %}", "syntax error",
                "{% for m in messages %}{% if m.role == 'tool' %}{{ m.content ) }}{% endif %}{% endfor %}",
                "syntax error");
        for (var b : broken.entrySet()) {
            Path config = configWith(b.getKey());
            var e = assertThrows(BadInputException.class, () -> ChatTemplate.load(config), b.getKey());
            assertTrue(e.getMessage().startsWith("chat template of " + config + ": ")
                    && e.getMessage().contains(b.getValue()) && !e.getMessage().contains("\n"), e.getMessage());
            var of = assertThrows(BadInputException.class, () -> ChatTemplate.of("my.jinja", b.getKey(), Map.of()));
            assertTrue(of.getMessage().startsWith("chat template of my.jinja: "), of.getMessage());
        }
    }

    @Test
    void aTemplateThatRefusesTheProbeConversationStillLoads() throws IOException {
        var t = ChatTemplate.load(configWith("{% if messages[0].role != 'system' %}"
                + "{{ raise_exception('a system message must come first') }}{% endif %}{{ messages[0].content }}"));
        assertEquals("rules", t.render(List.of(new ChatTemplate.Message("system", "rules")), false));
        var e = assertThrows(BadInputException.class, () -> t.render(List.of(new ChatTemplate.Message("user", "x")), true));
        assertTrue(e.getMessage().contains("a system message must come first"), e.getMessage());
    }

    @Test
    void aConfigWithoutTemplateSaysItIsMissingRatherThanBroken() throws IOException {
        Path config = dir.resolve("tokenizer_config.json");
        Files.writeString(config, "{\"eos_token\": \"</s>\"}");
        assertThrows(ChatTemplate.Missing.class, () -> ChatTemplate.load(config));
        Path broken = configWith("{% for m in messages %}");
        var e = assertThrows(BadInputException.class, () -> ChatTemplate.load(broken));
        assertFalse(e instanceof ChatTemplate.Missing, e.getMessage());
    }
}
