package dev.moe4j.io.chat;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.FatalTemplateErrorsException;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import jinjava.javax.el.CompositeELResolver;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDateTime;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The chat template of a Hugging Face model ({@code chat_template} in tokenizer_config.json, or
 * chat_template.jinja beside it): turns a conversation into the prompt text the model was trained on, as
 * transformers' {@code apply_chat_template(messages, tokenize=False, add_generation_prompt=...)} does. Rendered by
 * Jinjava set up like transformers' Jinja environment (trim_blocks, lstrip_blocks, loop controls) with the helpers
 * transformers adds ({@code raise_exception}, {@code strftime_now}, its {@code tojson}) and the Python string and
 * dict methods templates call.
 *
 * <p>Known differences from Jinja2 that no real template tested here relies on: a bare boolean or None prints as
 * {@code true}/empty rather than {@code True}/{@code None}; strings cannot be indexed from the end
 * ({@code s[-1]}) or repeated ({@code 'a' * 3}); slices with a step other than {@code [::-1]} are not read.
 */
public final class ChatTemplate {
    /** One message of a conversation; extra fields (reasoning_content, tool_calls, ...) go in {@link #fields}. */
    public record Message(String role, String content, Map<String, Object> fields) {
        public Message {
            // a LinkedHashMap copy: tool fields keep their order and may hold nulls (Python's None)
            fields = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(fields));
        }

        public Message(String role, String content) {
            this(role, content, Map.of());
        }

        Map<String, Object> toMap() {
            var m = new LinkedHashMap<String, Object>();
            m.put("role", role);
            m.put("content", content);
            m.putAll(fields);
            return m;
        }
    }

    private static final ThreadLocal<Clock> CLOCK = ThreadLocal.withInitial(Clock::systemDefaultZone);

    private final String source;
    private final String template;
    private final String prepared;
    private final Map<String, Object> specialTokens;
    private final Jinjava jinjava;
    private final Clock clock;

    private ChatTemplate(String source, String template, Map<String, Object> specialTokens) {
        this(source, template, JinjaSyntax.prepare(template), Map.copyOf(specialTokens), newEngine(false),
                Clock.systemDefaultZone());
        checkSyntax();
    }

    private ChatTemplate(String source, String template, String prepared, Map<String, Object> specialTokens,
                         Jinjava jinjava, Clock clock) {
        this.source = source;
        this.template = template;
        this.prepared = prepared;
        this.specialTokens = specialTokens;
        this.jinjava = jinjava;
        this.clock = clock;
    }

    /** What {@link #load} throws when a tokenizer_config.json has no chat template at all (not a broken one). */
    public static final class Missing extends BadInputException {
        public Missing(String message) {
            super(message);
        }
    }

    /**
     * A template from its text, with the special tokens it may use (bos_token, eos_token, ...); {@code source}
     * names where it came from in error messages. A template with a syntax error is refused here, not at its
     * first conversation.
     */
    public static ChatTemplate of(String source, String template, Map<String, String> specialTokens) {
        return new ChatTemplate(source, template, new HashMap<>(specialTokens));
    }

    /** The default template of a tokenizer_config.json (or of the chat_template.jinja next to it). */
    public static ChatTemplate load(Path tokenizerConfig) {
        return load(tokenizerConfig, "default");
    }

    /**
     * A named template of a tokenizer_config.json whose chat_template is a list of {name, template} (for example
     * "default" and "tool_use"); a single-string chat_template is the one named "default".
     */
    public static ChatTemplate load(Path tokenizerConfig, String name) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(tokenizerConfig));
        } catch (NoSuchFileException e) {
            throw new BadInputException(tokenizerConfig + ": no such file (expected a tokenizer_config.json)");
        } catch (JsonProcessingException e) {
            throw new BadInputException(tokenizerConfig + ": not valid JSON (" + Json.describe(e) + ")");
        } catch (IOException e) {
            throw new BadInputException(tokenizerConfig + ": cannot read (" + BadInputException.oneLine(e.getMessage()) + ")");
        }
        if (root == null || !root.isObject()) throw new BadInputException(tokenizerConfig + ": expected a JSON object");
        String template = templateText(tokenizerConfig, root.get("chat_template"), name);
        var specials = new HashMap<String, Object>();
        for (String key : List.of("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")) {
            String v = tokenContent(root.get(key));
            if (v != null) specials.put(key, v);
        }
        JsonNode additional = root.get("additional_special_tokens");
        if (additional != null && additional.isArray()) {
            var list = new java.util.ArrayList<String>();
            additional.forEach(t -> list.add(tokenContent(t)));
            specials.put("additional_special_tokens", list);
        }
        return new ChatTemplate(tokenizerConfig.toString(), template, specials);
    }

    private static String templateText(Path config, JsonNode node, String name) {
        if (node == null || node.isNull()) {
            Path jinja = config.resolveSibling("chat_template.jinja");
            if (name.equals("default") && Files.isRegularFile(jinja)) {
                try {
                    return Files.readString(jinja);
                } catch (IOException e) {
                    throw new BadInputException(jinja + ": cannot read (" + BadInputException.oneLine(e.getMessage()) + ")");
                }
            }
            throw new Missing(config + ": chat_template: missing (and no chat_template.jinja beside it)");
        }
        if (node.isTextual()) {
            if (!name.equals("default")) throw new BadInputException(config + ": chat_template: no template named " + name);
            return node.asText();
        }
        if (node.isArray()) {
            for (JsonNode t : node) {
                if (name.equals(t.path("name").asText()) && t.path("template").isTextual()) return t.get("template").asText();
            }
            throw new BadInputException(config + ": chat_template: no template named " + name);
        }
        throw new BadInputException(config + ": chat_template: expected a string or a list of {name, template}");
    }

    /** A special token as tokenizer_config.json spells it: a string, or an AddedToken object with "content". */
    private static String tokenContent(JsonNode node) {
        if (node == null || node.isNull()) return null;
        if (node.isTextual()) return node.asText();
        JsonNode content = node.get("content");
        return content != null && content.isTextual() ? content.asText() : null;
    }

    /** The same template with this clock for strftime_now (templates put the current date in the prompt). */
    public ChatTemplate withClock(Clock clock) {
        return new ChatTemplate(source, template, prepared, specialTokens, jinjava, clock);
    }

    /** The template text. */
    public String text() {
        return template;
    }

    /** Renders a conversation; {@code addGenerationPrompt} opens the assistant's turn at the end. */
    public String render(List<Message> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /** A rendered conversation and the character spans [start, end) of its {@code {% generation %}} blocks. */
    public record Marked(String text, List<int[]> generationSpans) {
        public Marked {
            generationSpans = List.copyOf(generationSpans);
        }
    }

    private static final java.util.regex.Pattern GENERATION_BLOCK =
            java.util.regex.Pattern.compile("\\{%-?\\s*generation\\s*-?%}");

    /**
     * Whether the template marks what the assistant generates with {@code {% generation %}} blocks, as the
     * templates made for TRL's assistant-only loss do.
     */
    public boolean marksGeneration() {
        return GENERATION_BLOCK.matcher(template).find();
    }

    /**
     * Renders a conversation as {@link #render(List, boolean)} does and says where the text of its
     * {@code {% generation %}} blocks lies, as transformers' {@code return_assistant_tokens_mask} finds it (none
     * for a template without such blocks).
     */
    public Marked renderMarked(List<Message> messages, boolean addGenerationPrompt) {
        for (int i = 0; i < messages.size(); i++) {
            String content = messages.get(i).content();
            if (content != null && (content.indexOf(GenerationTag.START) >= 0 || content.indexOf(GenerationTag.END) >= 0)) {
                throw new BadInputException("messages[" + i + "].content holds the private-use character U+E000 or "
                        + "U+E001, which moe4j uses to find the template's generation blocks");
            }
        }
        String marked = GenerationTag.marking(() -> render(messages, addGenerationPrompt));
        var text = new StringBuilder(marked.length());
        var spans = new java.util.ArrayList<int[]>();
        int open = -1;
        for (int i = 0; i < marked.length(); i++) {
            char c = marked.charAt(i);
            if (c == GenerationTag.START || c == GenerationTag.END) {
                boolean opens = c == GenerationTag.START;
                if (opens == (open >= 0)) {
                    throw new BadInputException("chat template of " + source + ": a {% generation %} block inside "
                            + "another one (or a stray marker in its own text)");
                }
                if (opens) {
                    open = text.length();
                } else {
                    spans.add(new int[] {open, text.length()});
                    open = -1;
                }
            } else {
                text.append(c);
            }
        }
        return new Marked(text.toString(), spans);
    }

    /**
     * Renders a conversation with extra template variables (tools, enable_thinking, reasoning_effort, ...), which
     * transformers passes through to the template the same way.
     */
    public String render(List<Message> messages, boolean addGenerationPrompt, Map<String, Object> extra) {
        CLOCK.set(clock);
        try {
            var result = jinjava.renderForResult(prepared, bindings(messages, addGenerationPrompt, extra));
            for (TemplateError e : result.getErrors()) {
                if (e.getSeverity() == TemplateError.ErrorType.FATAL) throw failure(e);
            }
            return result.getOutput();
        } catch (FatalTemplateErrorsException e) {
            throw failure(e.getErrors().iterator().next());
        } finally {
            CLOCK.remove();
        }
    }

    private Map<String, Object> bindings(List<Message> messages, boolean addGenerationPrompt, Map<String, Object> extra) {
        var bindings = new HashMap<String, Object>(specialTokens);
        bindings.putAll(extra);
        bindings.put("messages", messages.stream().map(Message::toMap).toList());
        bindings.put("add_generation_prompt", addGenerationPrompt);
        return bindings;
    }

    /**
     * Refuses a template that does not parse when it is loaded, rather than at the turn that first reaches the
     * error. A one-message conversation is rendered as a turn would be; then again in Jinjava's validation mode,
     * which also walks the branches that conversation does not take, for syntax errors only (its other errors come
     * from values the probe does not have, and its macros recurse only a little, since every branch of each call
     * is walked). The template refusing the probe (raise_exception) is not an error: that is about the
     * conversation, and a real one gets the template's reason.
     */
    private void checkSyntax() {
        var probe = bindings(List.of(new Message("user", "Hello")), true, Map.of());
        for (TemplateError e : errors(jinjava, probe)) {
            if (e.getSeverity() == TemplateError.ErrorType.FATAL && !raised(e)) {
                throw failure(e);
            }
        }
        for (TemplateError e : errors(newEngine(true), probe)) {
            if (e.getReason() == TemplateError.ErrorReason.SYNTAX_ERROR && !raised(e)) {
                throw failure(e);
            }
        }
    }

    private Iterable<TemplateError> errors(Jinjava engine, Map<String, Object> bindings) {
        CLOCK.set(clock);
        try {
            return engine.renderForResult(prepared, bindings).getErrors();
        } catch (FatalTemplateErrorsException e) {
            return e.getErrors();
        } finally {
            CLOCK.remove();
        }
    }

    private static boolean raised(TemplateError e) {
        for (Throwable cause = e.getException(); cause != null; cause = cause.getCause()) {
            if (cause instanceof TemplateRaised) {
                return true;
            }
        }
        return false;
    }

    private BadInputException failure(TemplateError e) {
        for (Throwable cause = e.getException(); cause != null; cause = cause.getCause()) {
            if (cause instanceof TemplateRaised raised) {
                return new BadInputException("chat template of " + source + " refused the conversation: "
                        + BadInputException.oneLine(raised.getMessage()));
            }
        }
        String where = e.getLineno() > 0 ? " (line " + e.getLineno() + ")" : "";
        return new BadInputException("chat template of " + source + ": " + firstLine(e.getMessage()) + where);
    }

    /** The first line of a library's message (the rest is its location and trace), cut short if it is long. */
    private static String firstLine(String message) {
        return BadInputException.oneLine(message == null ? null : message.lines().findFirst().orElse(""));
    }

    /** What raise_exception throws: the template's own message about the conversation. */
    static final class TemplateRaised extends RuntimeException {
        TemplateRaised(String message) {
            super(message);
        }
    }

    /** raise_exception(message), as transformers defines it. */
    public static Object raiseException(String message) {
        throw new TemplateRaised(message);
    }

    /** strftime_now(format): the current time in a Python strftime format. */
    public static String strftimeNow(String format) {
        return Strftime.format(LocalDateTime.now(CLOCK.get()), format);
    }

    /** {@code validationMode}: evaluate every branch, for {@link #checkSyntax} only. */
    private static Jinjava newEngine(boolean validationMode) {
        var resolver = new CompositeELResolver();
        resolver.add(new PythonMethods());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_WRITE);
        var config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withEnableRecursiveMacroCalls(true)
                .withMaxMacroRecursionDepth(validationMode ? 2 : 64)
                .withValidationMode(validationMode)
                .withElResolver(resolver)
                // Jinja's rules: {{- and -}} trim like {%- and -%}; "not x is defined" is not (x is defined)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseTrimmingForNotesAndExpressions(true)
                        .withParseWhitespaceControlStrictly(true)
                        .withHandleBackslashInQuotesOnly(true)
                        .withKeepNullableLoopValues(true)
                        .withEvaluateMapKeys(true)
                        .withUsePyishObjectMapper(true) // lists and dicts print as Python prints them
                        .build())
                .build();
        var jinjava = new Jinjava(config);
        var context = jinjava.getGlobalContext();
        context.registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raiseException", String.class));
        context.registerFunction(new ELFunctionDefinition("", "strftime_now", ChatTemplate.class, "strftimeNow", String.class));
        context.registerFilter(new PythonToJson());
        context.registerTag(new GenerationTag());
        return jinjava;
    }
}
