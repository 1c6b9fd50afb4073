package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.generate.SamplingRequest;
import dev.moe4j.model.generate.structured.JsonSchemas;
import dev.moe4j.model.generate.structured.Shape;
import dev.moe4j.moe.router.RoutingPolicy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One request to {@code /v1/chat/completions} or {@code /v1/completions}, read and checked field by field before
 * it waits for the model: a mistake comes back at once as a 400 naming the field. Fields of OpenAI's API that moe4j
 * does not implement (logit_bias, echo, the deprecated functions, ...) are refused rather than ignored when
 * they ask for something; the ones that change nothing (user, metadata, ...) are accepted.
 *
 * @param budgetField  the field that set the token budget (max_completion_tokens or max_tokens), or null: the
 *                     budget then comes from generation_config.json and is cut to the room the context leaves
 * @param stops        texts that end the reply (OpenAI's {@code stop})
 * @param choices      {@code n}: completions of the prompt to generate, each sampled with its own seed
 * @param logprobs     how many alternatives to report with each generated token's log-probability (chat:
 *                     {@code logprobs: true} with {@code top_logprobs}; completions: {@code logprobs: k}); null for
 *                     none
 * @param includeUsage {@code stream_options.include_usage}: a last chunk with the token counts
 * @param experts      the moe4j extension: report each generated token's first-ranked expert per MoE layer
 * @param format       {@code response_format}: the shape of JSON the reply must be (json_object or json_schema),
 *                     or null for text
 * @param tools        {@code tools} and {@code tool_choice} of a chat request, or null without tools
 * @param routing      the moe4j extension: how the MoE layers route this request ({@code moe4j.routing}), checked
 *                     for itself but not yet against the model; null for the server's routing
 */
record CompletionRequest(Endpoint endpoint, Prompt prompt, SamplingRequest sampling, String budgetField, List<String> stops,
                         int choices, Integer logprobs, boolean stream, boolean includeUsage, boolean experts,
                         Shape format, ToolCalls tools, RoutingPolicy routing) {
    /** The fields of {@code moe4j.routing}, named as the command line's routing flags with underscores. */
    static final List<String> ROUTING_FIELDS = List.of("experts_per_token", "expert_top_p", "min_experts",
            "max_experts", "expert_floor", "expert_mask", "force_experts", "capacity_factor", "capacity_overflow",
            "capacity_priority");

    /** The most choices one request may ask for ({@code n}): each is a sequence of its own, decoded together. */
    static final int MAX_CHOICES = 16;

    /** The two generating endpoints: their object names and id prefixes differ, the rest is shared. */
    enum Endpoint {
        CHAT("chat.completion", "chat.completion.chunk", "chatcmpl-", "messages"),
        TEXT("text_completion", "text_completion", "cmpl-", "prompt");

        final String object;
        final String chunkObject;
        final String idPrefix;
        /** The field that holds the prompt (errors about the prompt name it). */
        final String promptField;

        Endpoint(String object, String chunkObject, String idPrefix, String promptField) {
            this.object = object;
            this.chunkObject = chunkObject;
            this.idPrefix = idPrefix;
            this.promptField = promptField;
        }
    }

    /** What the model continues: a conversation (rendered by the chat template), a text, or token ids. */
    sealed interface Prompt {
        record Chat(List<ChatTemplate.Message> messages) implements Prompt {
        }

        record Text(String text) implements Prompt {
        }

        record Ids(int[] ids) implements Prompt {
        }
    }

    /** Message fields the chat template sees besides role and content. */
    private static final Set<String> MESSAGE_CORE = Set.of("role", "content");

    /**
     * Reads a request body. {@code expertsQuery} is the {@code ?experts=1} switch of the URL; {@code model} is the
     * served model's id, which a given {@code model} field must name.
     */
    static CompletionRequest parse(Endpoint endpoint, JsonNode body, boolean expertsQuery, String model) {
        if (!(body instanceof ObjectNode o)) {
            throw ApiError.invalid(null, "the request body must be a JSON object").refuse();
        }
        var f = new Fields(o);
        String asked = f.string("model");
        if (asked != null && !asked.equals(model)) {
            throw new ApiError(404, "the model " + BadInputException.quote(asked) + " is not served here; this server "
                    + "serves '" + model + "' (GET /v1/models)", ApiError.INVALID_REQUEST, "model", "model_not_found")
                    .refuse();
        }
        Prompt prompt = endpoint == Endpoint.CHAT ? new Prompt.Chat(messages(o)) : textPrompt(o);

        String budgetField = "max_completion_tokens";
        Integer maxTokens = f.positiveInt(budgetField);
        if (maxTokens == null) {
            budgetField = "max_tokens";
            maxTokens = f.positiveInt(budgetField);
        }
        Double temperature = f.number("temperature", 0, Double.MAX_VALUE, "a number of 0 or more (0 is greedy)");
        Double topP = f.number("top_p", Double.MIN_VALUE, 1, "a number in (0, 1]");
        Double minP = f.number("min_p", 0, 1, "a number in [0, 1]");
        Double penalty = f.number("repetition_penalty", Double.MIN_VALUE, Double.MAX_VALUE, "a positive number");
        Integer topK = f.integer("top_k", -1, Integer.MAX_VALUE, "an integer of 0 or more (0 or -1: every token)");
        if (topK != null && topK == -1) {
            topK = 0; // vLLM's spelling of "no top-k"
        }
        Double presence = f.number("presence_penalty", -2, 2, "a number in [-2, 2]");
        Double frequency = f.number("frequency_penalty", -2, 2, "a number in [-2, 2]");
        Long seed = f.seed();
        var sampling = new SamplingRequest(null, temperature, topK, topP, minP, penalty, presence, frequency, seed,
                maxTokens);

        Integer n = f.integer("n", 1, MAX_CHOICES, "an integer from 1 to " + MAX_CHOICES);
        boolean stream = f.bool("stream");
        boolean includeUsage = false;
        JsonNode options = o.get("stream_options");
        if (options != null && !options.isNull()) {
            if (!stream) {
                throw ApiError.invalid("stream_options", "stream_options is only allowed with stream: true").refuse();
            }
            if (!(options instanceof ObjectNode so)) {
                throw ApiError.invalid("stream_options", "stream_options: expected an object").refuse();
            }
            includeUsage = new Fields(so, "stream_options.").bool("include_usage");
        }
        Integer logprobs;
        if (endpoint == Endpoint.CHAT) {
            boolean wanted = f.bool("logprobs");
            Integer top = f.integer("top_logprobs", 0, 20, "an integer from 0 to 20");
            if (top != null && !wanted) {
                throw ApiError.invalid("top_logprobs", "top_logprobs needs logprobs: true").refuse();
            }
            logprobs = wanted ? (top == null ? 0 : top) : null;
        } else {
            logprobs = f.integer("logprobs", 0, 5, "an integer from 0 to 5 (alternatives per token)");
        }
        ObjectNode ext = extension(o);
        boolean experts = expertsQuery || (ext != null && new Fields(ext, "moe4j.").bool("experts"));
        RoutingPolicy routing = ext == null ? null : routing(ext.get("routing"));
        if (experts && n != null && n > 1) {
            throw ApiError.invalid("n", "n: the moe4j experts extension traces one choice; ask for n = 1").refuse();
        }
        refuseUnsupported(endpoint, f);
        Shape format = responseFormat(o);
        ToolCalls tools = endpoint == Endpoint.CHAT ? ToolCalls.parse(o) : null;
        if (format != null && tools != null && tools.forced()) {
            throw ApiError.invalid("response_format", "response_format and a required tool call cannot both shape"
                    + " the reply; drop one").refuse();
        }
        return new CompletionRequest(endpoint, prompt, sampling, maxTokens == null ? null : budgetField, f.stops(),
                n == null ? 1 : n, logprobs, stream, includeUsage, experts, format, tools, routing);
    }

    /**
     * {@code response_format}: text (null), any JSON object, or JSON valid under a schema, which constrained decoding
     * then guarantees (a reply cut short by its token budget is the only exception, with finish_reason "length").
     */
    private static Shape responseFormat(ObjectNode o) {
        JsonNode format = o.get("response_format");
        if (format == null || format.isNull()) {
            return null;
        }
        if (!(format instanceof ObjectNode f)) {
            throw ApiError.invalid("response_format", "response_format: expected an object such as"
                    + " {\"type\": \"json_object\"}").refuse();
        }
        String type = f.path("type").asText("");
        switch (type) {
            case "text" -> {
                return null;
            }
            case "json_object" -> {
                return JsonSchemas.anyObject();
            }
            case "json_schema" -> {
                JsonNode schema = f.path("json_schema").get("schema");
                if (!(f.get("json_schema") instanceof ObjectNode) || schema == null || schema.isNull()) {
                    throw ApiError.invalid("response_format.json_schema", "response_format.json_schema: expected an"
                            + " object {name, schema}").refuse();
                }
                try {
                    return JsonSchemas.compile(schema, "response_format.json_schema.schema");
                } catch (BadInputException e) {
                    throw ApiError.invalid("response_format.json_schema.schema", e.getMessage()).refuse();
                }
            }
            default -> throw ApiError.invalid("response_format.type", "response_format.type: expected text,"
                    + " json_object or json_schema, got " + BadInputException.oneLine(f.path("type").toString()))
                    .refuse();
        }
    }

    private static List<ChatTemplate.Message> messages(ObjectNode o) {
        JsonNode list = o.get("messages");
        if (list == null || list.isNull()) {
            throw ApiError.invalid("messages", "messages is required: a list of {role, content}").refuse();
        }
        if (!list.isArray() || list.isEmpty()) {
            throw ApiError.invalid("messages", "messages: expected a non-empty list of {role, content}").refuse();
        }
        var out = new ArrayList<ChatTemplate.Message>();
        for (int i = 0; i < list.size(); i++) {
            String where = "messages[" + i + "]";
            if (!(list.get(i) instanceof ObjectNode m)) {
                throw ApiError.invalid(where, where + ": expected an object {role, content}").refuse();
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual() || role.asText().isEmpty()) {
                throw ApiError.invalid(where + ".role", where + ".role: expected a role such as \"user\"").refuse();
            }
            Map<String, Object> fields = new LinkedHashMap<>();
            m.properties().forEach(e -> {
                if (!MESSAGE_CORE.contains(e.getKey())) {
                    fields.put(e.getKey(), Json.mapper().convertValue(e.getValue(), Object.class));
                }
            });
            if (fields.containsKey("reasoning_content") && !fields.containsKey("thinking")) {
                fields.put("thinking", fields.get("reasoning_content")); // the name gpt-oss's template reads
            }
            out.add(new ChatTemplate.Message(role.asText(), content(m.get("content"), where + ".content"), fields));
        }
        return out;
    }

    /** A message's content: a string, null (an assistant turn of tool calls), or a list of text parts. */
    private static String content(JsonNode content, String where) {
        if (content == null || content.isNull()) {
            return "";
        }
        if (content.isTextual()) {
            return content.asText();
        }
        if (!content.isArray()) {
            throw ApiError.invalid(where, where + ": expected a string or a list of text parts").refuse();
        }
        var parts = new ArrayList<String>();
        for (JsonNode part : content) {
            String type = part.path("type").asText("");
            if (!type.equals("text")) {
                throw ApiError.unsupported(where, "content of type " + BadInputException.quote(type) + " (only text)")
                        .refuse();
            }
            if (!part.path("text").isTextual()) {
                throw ApiError.invalid(where, where + ": a text part needs a string 'text'").refuse();
            }
            parts.add(part.get("text").asText());
        }
        return String.join("\n", parts); // as vLLM joins text parts for templates that expect a string
    }

    /** {@code prompt} of /v1/completions: a string, token ids, or a list holding exactly one of either. */
    private static Prompt textPrompt(ObjectNode o) {
        JsonNode p = o.get("prompt");
        if (p == null || p.isNull()) {
            throw ApiError.invalid("prompt", "prompt is required: a string or a list of token ids").refuse();
        }
        if (p.isTextual()) {
            return new Prompt.Text(p.asText());
        }
        if (!p.isArray() || p.isEmpty()) {
            throw ApiError.invalid("prompt", "prompt: expected a string or a non-empty list of token ids").refuse();
        }
        if (p.get(0).isTextual() || p.get(0).isArray()) {
            if (p.size() > 1) {
                throw ApiError.invalid("prompt", "prompt: moe4j serve takes one prompt per request, got "
                        + p.size()).refuse();
            }
            return p.get(0).isTextual() ? new Prompt.Text(p.get(0).asText()) : new Prompt.Ids(ids(p.get(0)));
        }
        return new Prompt.Ids(ids(p));
    }

    private static int[] ids(JsonNode list) {
        if (list.isEmpty()) {
            throw ApiError.invalid("prompt", "prompt: the list of token ids is empty").refuse();
        }
        int[] ids = new int[list.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode id = list.get(i);
            if (!id.isIntegralNumber() || !id.canConvertToInt() || id.asInt() < 0) {
                throw ApiError.invalid("prompt", "prompt[" + i + "]: expected a token id (an integer of 0 or more),"
                        + " got " + BadInputException.oneLine(id.toString())).refuse();
            }
            ids[i] = id.asInt();
        }
        return ids;
    }

    /** The moe4j extension object, {@code "moe4j": {"experts": true, "routing": {...}}}, or null. */
    private static ObjectNode extension(ObjectNode o) {
        JsonNode ext = o.get("moe4j");
        if (ext == null || ext.isNull()) {
            return null;
        }
        if (!(ext instanceof ObjectNode e)) {
            throw ApiError.invalid("moe4j", "moe4j: expected an object such as {\"experts\": true}").refuse();
        }
        for (var name : e.properties().stream().map(Map.Entry::getKey).toList()) {
            if (!name.equals("experts") && !name.equals("routing")) {
                throw ApiError.invalid("moe4j." + name, "moe4j." + name + ": unknown; the extension has the fields"
                        + " experts and routing").refuse();
            }
        }
        return e;
    }

    /**
     * {@code moe4j.routing}: a routing policy with the routing flags of the command line as fields
     * ({@code experts_per_token}, {@code expert_top_p}, ...; masks as {@code "3:0,5;4:1"} or {@code {"3": [0, 5]}}).
     */
    private static RoutingPolicy routing(JsonNode node) {
        String at = "moe4j.routing";
        if (node == null || node.isNull()) {
            return null;
        }
        if (!(node instanceof ObjectNode r)) {
            throw ApiError.invalid(at, at + ": expected an object such as {\"experts_per_token\": 1}").refuse();
        }
        for (var name : r.properties().stream().map(Map.Entry::getKey).toList()) {
            if (!ROUTING_FIELDS.contains(name)) {
                throw ApiError.invalid(at + "." + name, at + "." + name + ": unknown; the fields are "
                        + String.join(", ", ROUTING_FIELDS)).refuse();
            }
        }
        var f = new Fields(r, at + ".");
        var b = RoutingPolicy.builder(RoutingPolicy.Naming.fields(at + "."));
        try {
            Integer k = f.integer("experts_per_token", 1, Integer.MAX_VALUE, "a positive integer");
            if (k != null) {
                b.expertsPerToken(k);
            }
            Double p = f.number("expert_top_p", Double.MIN_VALUE, 1, "a probability mass in (0, 1]");
            if (p != null) {
                b.topP(p);
            }
            Integer min = f.integer("min_experts", 1, Integer.MAX_VALUE, "a positive integer");
            if (min != null) {
                b.minExperts(min);
            }
            Integer max = f.integer("max_experts", 1, Integer.MAX_VALUE, "a positive integer");
            if (max != null) {
                b.maxExperts(max);
            }
            Double floor = f.number("expert_floor", Double.MIN_VALUE, Math.nextDown(1.0), "a probability in (0, 1)");
            if (floor != null) {
                b.floor(floor);
            }
            layerExperts(r, "expert_mask", at, b::mask, b::mask);
            layerExperts(r, "force_experts", at, b::force, b::force);
            Double capacity = f.number("capacity_factor", Double.MIN_VALUE, Double.MAX_VALUE, "a number > 0");
            if (capacity != null) {
                b.capacityFactor(capacity);
            }
            String overflow = f.string("capacity_overflow");
            if (overflow != null) {
                b.overflow(overflow);
            }
            String priority = f.string("capacity_priority");
            if (priority != null) {
                b.priority(priority);
            }
            return b.build();
        } catch (BadInputException e) {
            throw ApiError.invalid(at, e.getMessage()).refuse();
        }
    }

    /** A mask or forced experts: the command line's syntax as a string, or an object of layer ("*": every layer) to a list. */
    private static void layerExperts(ObjectNode r, String field, String at,
                                     java.util.function.Consumer<String> text,
                                     java.util.function.BiConsumer<Integer, List<Integer>> lists) {
        JsonNode v = r.get(field);
        String where = at + "." + field;
        if (v == null || v.isNull()) {
            return;
        }
        if (v.isTextual()) {
            text.accept(v.asText());
            return;
        }
        if (!(v instanceof ObjectNode layers) || layers.isEmpty()) {
            throw ApiError.invalid(where, where + ": expected \"LAYER:EXPERTS;...\" or an object such as"
                    + " {\"3\": [0, 5], \"*\": [7]}, got " + BadInputException.oneLine(v.toString())).refuse();
        }
        for (var e : layers.properties()) {
            int layer;
            if (e.getKey().equals("*")) {
                layer = RoutingPolicy.EVERY_LAYER;
            } else {
                try {
                    layer = Integer.parseInt(e.getKey());
                } catch (NumberFormatException x) {
                    layer = -2;
                }
                if (layer < 0) {
                    throw ApiError.invalid(where, where + ": " + BadInputException.quote(e.getKey()) + " is not a"
                            + " layer index (or *)").refuse();
                }
            }
            var experts = new ArrayList<Integer>();
            if (e.getValue().isArray()) {
                for (JsonNode x : e.getValue()) {
                    experts.add(x.isIntegralNumber() && x.canConvertToInt() ? x.asInt() : -1);
                }
            }
            if (!e.getValue().isArray() || experts.contains(-1)) {
                throw ApiError.invalid(where, where + "." + e.getKey() + ": expected a list of expert indices, got "
                        + BadInputException.oneLine(e.getValue().toString())).refuse();
            }
            lists.accept(layer, experts);
        }
    }

    /** Fields that ask for what moe4j does not do: refused unless they hold their no-op value. */
    private static void refuseUnsupported(Endpoint endpoint, Fields f) {
        f.emptyOnly("logit_bias", "logit_bias");
        if (endpoint == Endpoint.CHAT) {
            f.emptyOnly("functions", "functions (the deprecated form of tools; use tools)");
        } else {
            f.falseOnly("echo", "echo");
            f.emptyOnly("suffix", "suffix");
            f.integer("best_of", 1, 1, "1 (moe4j serve generates one choice per request)");
        }
    }

    /** Typed access to a request object's fields, with errors that name the field. */
    private static final class Fields {
        final ObjectNode o;
        final String prefix;

        Fields(ObjectNode o) {
            this(o, "");
        }

        Fields(ObjectNode o, String prefix) {
            this.o = o;
            this.prefix = prefix;
        }

        private JsonNode get(String name) {
            JsonNode v = o.get(name);
            return v == null || v.isNull() ? null : v;
        }

        private ApiError.Refusal wrong(String name, String expected, JsonNode got) {
            return ApiError.invalid(prefix + name, prefix + name + ": expected " + expected + ", got "
                    + BadInputException.oneLine(got.toString())).refuse();
        }

        String string(String name) {
            JsonNode v = get(name);
            if (v == null) {
                return null;
            }
            if (!v.isTextual()) {
                throw wrong(name, "a string", v);
            }
            return v.asText();
        }

        boolean bool(String name) {
            JsonNode v = get(name);
            if (v == null) {
                return false;
            }
            if (!v.isBoolean()) {
                throw wrong(name, "true or false", v);
            }
            return v.asBoolean();
        }

        Double number(String name, double min, double max, String expected) {
            JsonNode v = get(name);
            if (v == null) {
                return null;
            }
            if (!v.isNumber() || !(v.asDouble() >= min && v.asDouble() <= max)) {
                throw wrong(name, expected, v);
            }
            return v.asDouble();
        }

        Integer integer(String name, int min, int max, String expected) {
            JsonNode v = get(name);
            if (v == null) {
                return null;
            }
            if (!isWhole(v) || !v.canConvertToInt() || v.asInt() < min || v.asInt() > max) {
                throw wrong(name, expected, v);
            }
            return v.asInt();
        }

        Integer positiveInt(String name) {
            return integer(name, 1, Integer.MAX_VALUE, "a positive integer");
        }

        Long seed() {
            JsonNode v = get("seed");
            if (v == null) {
                return null;
            }
            if (!isWhole(v) || !v.canConvertToLong()) {
                throw wrong("seed", "an integer", v);
            }
            return v.asLong();
        }

        /** {@code stop}: a string or a list of strings, none of them empty. */
        List<String> stops() {
            JsonNode v = get("stop");
            if (v == null) {
                return List.of();
            }
            var out = new ArrayList<String>();
            if (v.isTextual()) {
                out.add(v.asText());
            } else if (v.isArray()) {
                v.forEach(s -> out.add(s.isTextual() ? s.asText() : null));
            }
            if (!(v.isTextual() || v.isArray()) || out.contains(null) || out.contains("")) {
                throw wrong("stop", "a non-empty string or a list of them", v);
            }
            return out;
        }

        void zeroOnly(String name, String what) {
            JsonNode v = get(name);
            if (v != null && !(v.isNumber() && v.asDouble() == 0)) {
                throw ApiError.unsupported(name, what).refuse();
            }
        }

        void falseOnly(String name, String what) {
            JsonNode v = get(name);
            if (v != null && !(v.isBoolean() && !v.asBoolean()) && !(v.isNumber() && v.asDouble() == 0)) {
                throw ApiError.unsupported(name, what).refuse();
            }
        }

        void emptyOnly(String name, String what) {
            JsonNode v = get(name);
            boolean empty = v == null || (v.isContainerNode() ? v.isEmpty() : v.isTextual() && v.asText().isEmpty());
            if (!empty) {
                throw ApiError.unsupported(name, what).refuse();
            }
        }

        private static boolean isWhole(JsonNode v) {
            return v.isIntegralNumber() || (v.isNumber() && v.asDouble() == Math.rint(v.asDouble()));
        }
    }
}
