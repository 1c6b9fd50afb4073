package dev.moe4j.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.Generation;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.BatchScheduler;
import dev.moe4j.model.generate.DecodingSequence;
import dev.moe4j.model.generate.SamplingConfig;
import dev.moe4j.model.generate.SequenceCache;
import dev.moe4j.model.generate.TokenLogprob;
import dev.moe4j.model.generate.structured.StructuredOutput;
import dev.moe4j.model.generate.structured.TokenVocabulary;
import dev.moe4j.moe.router.RoutingPolicy;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * The two generating endpoints, {@code /v1/chat/completions} and {@code /v1/completions}: a checked
 * {@link CompletionRequest} becomes prompt ids (through the chat template for a conversation), becomes a
 * {@link DecodingSequence} (the generation {@code moe4j generate} runs) that the {@link BatchScheduler} decodes
 * together with the other requests' sequences, one batched forward pass per step, and is answered in OpenAI's
 * shapes: Server-Sent Events of chunks, or one JSON object.
 *
 * <p>Finished sequences stay in a {@link CachePool} (llama.cpp keeps one per slot): a request whose prompt starts
 * with what one holds, such as the next turn of the same conversation, is fed only from where they differ, and its
 * usage says how many prompt tokens were cached. A cache records only passes that ran, so a stopped or failed
 * generation leaves it holding a true prefix.
 */
final class Completions {
    /** What the log says about one request. */
    record Outcome(int promptTokens, int cachedTokens, int completionTokens, String finish, double seconds) {
        String describe() {
            String cached = cachedTokens > 0 ? " (" + cachedTokens + " cached)" : "";
            return String.format(Locale.ROOT, "%d prompt%s + %d completion tokens (%s) in %.2f s", promptTokens,
                    cached, completionTokens, finish, seconds);
        }
    }

    /**
     * How much of a long prompt text is tokenised first, in characters per token of the context: more than any
     * real text needs (English runs at about 4 characters a token), so that only prompts that cannot fit are
     * refused on their start.
     */
    static final int CHARS_LOOKED_AT_PER_TOKEN = 16;

    private final ServedModel served;
    private final BatchScheduler scheduler;
    private final BooleanSupplier closing;
    private final CachePool caches;
    private final int maxWaiting;
    private final long requestTimeoutNanos;
    private final ServerMetrics metrics;
    private final java.util.function.Consumer<String> unexpectedFailure;

    Completions(ServedModel served, BatchScheduler scheduler, ServeLimits limits, ServerMetrics metrics,
                BooleanSupplier closing, java.util.function.Consumer<String> unexpectedFailure) {
        this.served = served;
        this.maxWaiting = limits.maxWaiting();
        this.requestTimeoutNanos = (long) (limits.requestTimeoutSeconds() * 1e9);
        this.unexpectedFailure = unexpectedFailure;
        this.metrics = metrics;
        this.scheduler = scheduler;
        this.closing = closing;
        this.caches = new CachePool(scheduler.maxSequences());
        this.format = served.chatTemplate() == null ? null : ReplyFormat.of(served.chatTemplate().text(),
                served.folder().tokenizer(), served.folder().eosTokenIds());
    }

    /** How the chat template's model writes reasoning and calls, or null for plain text. */
    private final ReplyFormat format;

    /**
     * Text of choice {@code index} that became final, handed from the scheduler's thread to the request's, with the
     * expert extension of its tokens (read there, where the sequence's cache holds still; null when not asked for).
     */
    private record Piece(int index, String text, String reasoning, ObjectNode experts, List<TokenLogprob> logprobs) {
    }

    /** Releases the kept caches' memory (the server is closed). */
    void close() {
        caches.clear();
    }

    /**
     * Answers one request; refusals found before anything was sent leave as {@link ApiError.Refusal}. Each of the
     * request's {@code n} choices is a sequence of its own (its seed the request's plus its index), decoded
     * together with every other request's.
     */
    Outcome serve(HttpExchange exchange, CompletionRequest request) throws Exception {
        long start = System.nanoTime();
        int[] prompt = promptIds(request);
        var folder = served.folder();
        SamplingConfig sampling;
        try {
            sampling = request.sampling().resolve(folder.generation());
        } catch (BadInputException e) {
            throw ApiError.invalid(null, e.getMessage()).refuse();
        }
        RoutingPolicy routing = request.routing() == null ? served.routing() : request.routing();
        if (request.routing() != null) {
            try {
                folder.model().checkRouting(routing, RoutingPolicy.Naming.fields("moe4j.routing."));
            } catch (BadInputException e) {
                throw ApiError.invalid("moe4j.routing", e.getMessage()).refuse();
            }
        }
        if (scheduler.running() >= scheduler.maxSequences() && scheduler.waiting() >= maxWaiting) {
            throw new ApiError(503, "the server is busy: " + scheduler.waiting() + " requests are waiting for one of "
                    + scheduler.maxSequences() + " places; retry shortly", "server_error", null, ApiError.QUEUE_FULL)
                    .refuse();
        }
        int n = request.choices();
        // the first choice takes the kept cache that shares most of the prompt; the others start from its cache
        var held = new ArrayList<SequenceCache>(n);
        held.add(caches.acquire(prompt, routing));
        for (int i = 1; i < n; i++) {
            held.add(new SequenceCache());
        }
        ExpertTrace trace = request.experts() ? new ExpertTrace() : null;
        ExpertTokens experts = null;
        if (trace != null) {
            trace.from(prompt.length);
            experts = new ExpertTokens(trace, held.getFirst(), served.moeLayers(), prompt.length);
        }
        int budget = request.sampling().maxNewTokens(folder.generation());
        var reply = new Reply(request, experts);
        EventStream stream = request.stream() ? new EventStream(exchange) : null;
        var pieces = new LinkedBlockingQueue<Piece>();
        var stop = new AtomicReference<Cancelled>();
        var connection = new ClientConnection(exchange);
        long deadline = requestTimeoutNanos > 0 ? start + requestTimeoutNanos : Long.MAX_VALUE;
        Supplier<RuntimeException> stopper = () -> {
            if (closing.getAsBoolean()) {
                return Cancelled.closing();
            }
            if (stop.get() == null && System.nanoTime() - deadline > 0) {
                stop.set(Cancelled.timedOut(requestTimeoutNanos / 1e9));
            }
            // A reply sent whole writes nothing until the end, so its connection is probed here, between steps; a
            // stream's is probed by the request's own thread, which writes to it.
            if (stop.get() == null && stream == null && connection.gone()) {
                stop.set(Cancelled.clientLeft(null));
            }
            return stop.get();
        };
        var running = new ArrayList<CompletableFuture<Generation>>(n);
        ExpertTokens tokens = experts;
        // per choice, the sequence and how many of its tokens' logprobs were sent (read and written on the
        // scheduler's thread, in the listener)
        var sequences = new DecodingSequence[n];
        int[] reported = new int[n];
        ToolCalls tools = request.tools() != null && request.tools().readsCalls() ? request.tools() : null;
        // the chat reply's format is read where the model writes one: calls' markup is held back, reasoning apart
        ReplyFormat reading = request.endpoint() == CompletionRequest.Endpoint.CHAT && format != null
                && (format.alwaysRead() || tools != null) ? format : null;
        var textSoFar = new StringBuilder[n];
        int[] shownContent = new int[n], shownReasoning = new int[n];
        var shape = request.format() != null ? request.format() : tools == null ? null : tools.forcedReply(format);
        var structured = shape == null ? null : new StructuredOutput(shape, TokenVocabulary.of(folder.tokenizer()),
                request.format() != null ? "response_format" : "tool_choice");
        var tokenText = reading != null && reading.keepsSpecialTokens()
                ? dev.moe4j.model.generate.TokenText.withSpecialTokens(folder.tokenizer()) : folder.text();
        for (int i = 0; i < n; i++) {
            int index = i;
            GenerationListener listener = stream == null ? GenerationListener.NONE : (text, position) -> {
                List<TokenLogprob> newLogprobs = List.of();
                if (request.logprobs() != null) {
                    var all = sequences[index].logprobs();
                    int upTo = Math.min(all.size(), position - prompt.length + 1);
                    newLogprobs = List.copyOf(all.subList(Math.min(reported[index], upTo), upTo));
                    reported[index] = Math.max(reported[index], upTo);
                }
                String showNow = text, reasoningNow = "";
                if (reading != null) {
                    var sofar = textSoFar[index] == null ? textSoFar[index] = new StringBuilder() : textSoFar[index];
                    sofar.append(text);
                    var r = reading.read(sofar.toString(), false, tools);
                    String content = r.content() == null ? "" : r.content();
                    String thought = r.reasoning() == null ? "" : r.reasoning();
                    showNow = content.length() > shownContent[index] ? content.substring(shownContent[index]) : "";
                    reasoningNow = thought.length() > shownReasoning[index]
                            ? thought.substring(shownReasoning[index]) : "";
                    shownContent[index] += showNow.length();
                    shownReasoning[index] += reasoningNow.length();
                }
                pieces.add(new Piece(index, showNow, reasoningNow, tokens == null ? null : tokens.upTo(position),
                        newLogprobs));
            };
            var options = new GenerationOptions(budget, sampling.withSeed(sampling.seed() + i), folder.eosTokenIds(),
                    request.stops(), trace, trace != null, request.logprobs() == null ? -1 : request.logprobs())
                    .withStructured(structured).withRouting(routing);
            try {
                sequences[i] = new DecodingSequence(folder.model(), tokenText, held.get(i), prompt, options,
                        listener);
            } catch (RuntimeException e) {
                held.forEach(caches::release);
                throw e;
            }
        }
        // the other choices feed no prompt: they start from the first one's cache once it is prefilled
        running.addAll(scheduler.submitChoices(List.of(sequences), stopper));
        var all = CompletableFuture.allOf(running.toArray(CompletableFuture[]::new));

        var generations = new ArrayList<Generation>(n);
        try {
            // The scheduler's thread runs the model for every request; this one writes to its client, so that a
            // slow or gone client holds up nobody else.
            while (!all.isDone() || !pieces.isEmpty()) {
                Piece piece = pieces.poll(50, TimeUnit.MILLISECONDS);
                if (piece != null && stop.get() == null) {
                    try {
                        reply.content(stream, piece.index(), piece.text(), piece.reasoning(), piece.experts(),
                                piece.logprobs());
                    } catch (Cancelled c) {
                        stop.set(c);
                    }
                } else if (piece == null && stream != null && stop.get() == null && connection.gone()) {
                    stop.set(Cancelled.clientLeft(null));
                }
            }
            for (var future : running) {
                try {
                    generations.add(future.join());
                } catch (CompletionException e) {
                    switch (e.getCause()) {
                        case Error error -> throw error;
                        case Exception cause -> throw cause;
                        case null, default -> throw e;
                    }
                }
            }
            if (stop.get() != null) {
                throw stop.get();
            }
        } catch (Cancelled c) {
            int generated = held.stream().mapToInt(cache -> Math.max(0, cache.length() - prompt.length)).sum();
            var stopped = new Outcome(prompt.length, 0, generated, "stopped: " + c.getMessage(), seconds(start));
            metrics.ended(label(request), "stopped");
            if (c.byClient()) {
                return stopped; // nobody to answer
            }
            var error = new ApiError(c.status(), "the generation was stopped: " + c.getMessage(), "server_error", null,
                    c.status() == 504 ? "timeout" : null);
            if (stream == null || !stream.started()) {
                throw error.refuse();
            }
            sendError(stream, error);
            return stopped;
        } catch (BadInputException e) {
            metrics.ended(label(request), "failed");
            ApiError error = ApiError.invalid(request.endpoint().promptField, e.getMessage());
            if (stream == null || !stream.started()) {
                throw error.refuse();
            }
            sendError(stream, error);
            return new Outcome(prompt.length, 0, 0, "failed: " + e.getMessage(), seconds(start));
        } catch (RuntimeException | Error e) {
            metrics.ended(label(request), "failed");
            if (stream == null || !stream.started()) {
                throw e;
            }
            unexpectedFailure.accept(e.toString().lines().findFirst().orElse(""));
            sendError(stream, new ApiError(500, "the generation failed: " + e, "server_error", null, null));
            return new Outcome(prompt.length, 0, 0, "failed: " + e, seconds(start));
        } finally {
            if (generations.size() < n && stop.get() == null) {
                stop.set(Cancelled.clientLeft(null)); // a choice failed: the others stop too
            }
            release(running, held);
        }

        int completion = generations.stream().mapToInt(g -> g.outputIds().length).sum();
        var splits = new ArrayList<ReplyFormat.Reading>(n);
        for (Generation g : generations) {
            splits.add(reading == null ? new ReplyFormat.Reading(g.text(), null, List.of())
                    : reading.read(g.text(), true, tools));
        }
        String finish = finishReason(generations.getFirst(), splits.getFirst());
        long[] started = new long[n];
        long[][] gaps = new long[n][];
        for (int i = 0; i < n; i++) {
            started[i] = sequences[i].startedAt();
            gaps[i] = sequences[i].interTokenNanos();
        }
        metrics.answered(label(request), finish, generations, started, gaps, start);
        if (stream != null) {
            try {
                for (int i = 0; i < n; i++) {
                    Generation g = generations.get(i);
                    // the logprobs of tokens whose text was held back until the end
                    var rest = g.logprobs().subList(Math.min(reported[i], g.logprobs().size()), g.logprobs().size());
                    if (reading != null) {
                        reply.heldBack(stream, i, splits.get(i), shownContent[i], shownReasoning[i]);
                    }
                    reply.finish(stream, i, finishReason(g, splits.get(i)), prompt.length + g.outputIds().length - 1,
                            rest);
                }
                if (request.includeUsage()) {
                    stream.send(reply.usageChunk(generations));
                }
                stream.done();
            } catch (Cancelled c) {
                return new Outcome(prompt.length, generations.getFirst().reusedTokens(), completion,
                        "stopped: " + c.getMessage(), seconds(start));
            }
        } else {
            ModelServer.sendJson(exchange, 200, reply.whole(generations, splits, prompt.length));
        }
        return new Outcome(prompt.length, generations.getFirst().reusedTokens(), completion, finish, seconds(start));
    }

    /** The endpoint as the metrics name it. */
    static String label(CompletionRequest request) {
        return request.endpoint() == CompletionRequest.Endpoint.CHAT ? "chat" : "completions";
    }

    private static String finishReason(Generation g, ReplyFormat.Reading split) {
        if (!split.calls().isEmpty()) {
            return "tool_calls";
        }
        return switch (g.stopReason()) {
            case EOS, STOP_STRING -> "stop";
            case MAX_TOKENS, CONTEXT_FULL -> "length";
        };
    }

    /** Waits until the scheduler is done with every submitted choice, then gives their caches back to the pool. */
    private void release(List<CompletableFuture<Generation>> running, List<SequenceCache> held) {
        running.forEach(f -> f.handle((x, y) -> null).join());
        held.forEach(caches::release);
    }

    /**
     * The prompt as token ids, checked against the model's vocabulary and context, together with the token budget
     * the request asked for.
     */
    int[] promptIds(CompletionRequest request) {
        var folder = served.folder();
        String field = request.endpoint().promptField;
        int[] ids = switch (request.prompt()) {
            case CompletionRequest.Prompt.Chat chat -> {
                if (served.chatTemplate() == null) {
                    throw ApiError.invalid("messages", served.noChatTemplate() + " when starting moe4j serve;"
                            + " /v1/completions works without one").refuse();
                }
                ToolCalls tools = request.tools();
                if (tools != null && tools.readsCalls() && format == null) {
                    throw ApiError.unsupported("tools", "tools with this model's chat template (moe4j reads"
                            + " Hermes-style <tool_call> blocks, as the Qwen2.5 and Qwen3 templates write them,"
                            + " Mistral's [TOOL_CALLS] lists and gpt-oss's harmony channels; DeepSeek's format is not"
                            + " supported yet)")
                            .refuse();
                }
                String text;
                try {
                    text = served.chatTemplate().render(chat.messages(), true,
                            tools == null ? Map.of() : Map.of("tools", tools.forTemplate()));
                } catch (BadInputException e) {
                    throw ApiError.invalid("messages", e.getMessage()).refuse();
                }
                // the template writes the special tokens (BOS, turn markers) itself
                yield encode(text, false, field);
            }
            case CompletionRequest.Prompt.Text text -> encode(text.text(), true, field);
            case CompletionRequest.Prompt.Ids given -> {
                int vocab = folder.config().vocabSize();
                for (int i = 0; i < given.ids().length; i++) {
                    if (given.ids()[i] >= vocab) {
                        throw ApiError.invalid(field, "prompt[" + i + "]: token id " + given.ids()[i] + " is outside"
                                + " the model's vocabulary of " + vocab + " ids").refuse();
                    }
                }
                yield given.ids();
            }
        };
        if (ids.length == 0) {
            throw ApiError.invalid(field, "the prompt is empty: at least one token is needed").refuse();
        }
        int context = served.contextLength();
        if (ids.length >= context) {
            throw new ApiError(400, "the prompt has " + ids.length + " tokens, which leaves no room for a reply in"
                    + " this model's context of " + context + " tokens", ApiError.INVALID_REQUEST, field,
                    "context_length_exceeded").refuse();
        }
        Integer asked = request.sampling().maxNewTokens();
        if (asked != null && (long) ids.length + asked > context) {
            // as OpenAI's API and vLLM answer: a budget the context cannot hold is refused, not quietly cut
            throw new ApiError(400, request.budgetField() + " is " + asked + ", but the prompt has " + ids.length
                    + " tokens and this model's context holds " + context + ": at most " + (context - ids.length)
                    + " tokens can follow it", ApiError.INVALID_REQUEST, request.budgetField(),
                    "context_length_exceeded").refuse();
        }
        return ids;
    }

    /**
     * A prompt text as token ids. A text longer than {@link #CHARS_LOOKED_AT_PER_TOKEN} characters per token of the
     * context is first tokenised only up to that length (cut between words, where a word's tokens do not depend on
     * what follows): when that start alone fills the context, the prompt is refused without tokenising the rest,
     * so that megabytes of prompt cost what a context's worth does.
     */
    private int[] encode(String text, boolean addSpecialTokens, String field) {
        var tokenizer = served.folder().tokenizer();
        int context = served.contextLength();
        long looked = (long) context * CHARS_LOOKED_AT_PER_TOKEN;
        if (text.length() > looked) {
            int cut = wordBoundaryBefore(text, (int) looked);
            int tokens = tokenizer.encodeIds(text.substring(0, cut), addSpecialTokens).length;
            if (tokens >= context) {
                throw new ApiError(400, "the prompt has " + text.length() + " characters and its first " + cut
                        + " alone are " + tokens + " tokens, which leaves no room for a reply in this model's context"
                        + " of " + context + " tokens", ApiError.INVALID_REQUEST, field, "context_length_exceeded")
                        .refuse();
            }
        }
        return tokenizer.encodeIds(text, addSpecialTokens);
    }

    /** Where to cut {@code text} at most {@code limit} characters in: before the last whitespace, if any. */
    private static int wordBoundaryBefore(String text, int limit) {
        for (int i = limit; i > limit / 2; i--) {
            if (Character.isWhitespace(text.charAt(i))) {
                return i;
            }
        }
        return Character.isLowSurrogate(text.charAt(limit)) ? limit - 1 : limit;
    }

    private static void sendError(EventStream stream, ApiError error) {
        try {
            stream.send(error.toJson());
        } catch (Cancelled ignored) {
            // nobody is left to tell
        }
    }

    private static double seconds(long start) {
        return (System.nanoTime() - start) / 1e9;
    }

    /** The response objects of one request: chunks while streaming, or the whole completion. */
    private final class Reply {
        private final CompletionRequest request;
        private final ExpertTokens experts;
        private final String id;
        private final long created = Instant.now().getEpochSecond();
        private final java.util.BitSet roleSent = new java.util.BitSet();
        /** Characters of each choice's text streamed so far: where its next tokens' text_offset starts. */
        private final int[] shownChars = new int[CompletionRequest.MAX_CHOICES];

        Reply(CompletionRequest request, ExpertTokens experts) {
            this.request = request;
            this.experts = experts;
            byte[] random = new byte[12];
            ThreadLocalRandom.current().nextBytes(random);
            this.id = request.endpoint().idPrefix + HexFormat.of().formatHex(random);
        }

        private boolean chat() {
            return request.endpoint() == CompletionRequest.Endpoint.CHAT;
        }

        /**
         * Text of a choice that became final, with the expert extension of its tokens (null when not asked for) and
         * the logprobs of the tokens generated since the last chunk.
         */
        void content(EventStream stream, int index, String text, String reasoning, ObjectNode expertTokens,
                     List<TokenLogprob> logprobs) {
            openChat(stream, index);
            ObjectNode chunk = chunk(index, text, null);
            if (!reasoning.isEmpty()) {
                ((ObjectNode) chunk.get("choices").get(0).get("delta")).put("reasoning_content", reasoning);
            }
            setLogprobs((ObjectNode) chunk.get("choices").get(0), logprobs, shownChars[index]);
            shownChars[index] += text.length();
            if (expertTokens != null) {
                chunk.set("moe4j", expertTokens);
            }
            stream.send(chunk);
        }

        /**
         * With tools, what a choice's stream held back, at its end: the rest of its content (all of the held text
         * where it made no call) and its calls, whole, in one delta.
         */
        void heldBack(EventStream stream, int index, ReplyFormat.Reading split, int shownChars, int shownReasoning) {
            String content = split.content() == null ? "" : split.content();
            String reasoning = split.reasoning() == null ? "" : split.reasoning();
            if (content.length() > shownChars || reasoning.length() > shownReasoning) {
                openChat(stream, index);
                ObjectNode chunk = chunk(index, content.length() > shownChars ? content.substring(shownChars) : null,
                        null);
                if (reasoning.length() > shownReasoning) {
                    ((ObjectNode) chunk.get("choices").get(0).get("delta")).put("reasoning_content",
                            reasoning.substring(shownReasoning));
                }
                stream.send(chunk);
            }
            if (!split.calls().isEmpty()) {
                openChat(stream, index);
                ObjectNode chunk = chunk(index, null, null);
                ToolCalls.put((ObjectNode) chunk.get("choices").get(0).get("delta"), split.calls(), true);
                stream.send(chunk);
            }
        }

        /** A choice's last chunk: the finish reason, and the tokens not reported yet (their text was held back). */
        void finish(EventStream stream, int index, String finish, int lastPosition, List<TokenLogprob> logprobs) {
            openChat(stream, index);
            ObjectNode chunk = chunk(index, chat() ? null : "", finish);
            setLogprobs((ObjectNode) chunk.get("choices").get(0), logprobs, shownChars[index]);
            if (experts != null) {
                chunk.set("moe4j", experts.upTo(lastPosition));
            }
            stream.send(chunk);
        }

        /** OpenAI's first chat chunk of each choice names the role with empty content. */
        private void openChat(EventStream stream, int index) {
            if (chat() && !roleSent.get(index)) {
                roleSent.set(index);
                ObjectNode chunk = chunk(index, null, null);
                ObjectNode delta = (ObjectNode) chunk.get("choices").get(0).get("delta");
                delta.put("role", "assistant");
                delta.put("content", "");
                stream.send(chunk);
            }
        }

        private ObjectNode head(String object) {
            ObjectNode o = Json.mapper().createObjectNode();
            o.put("id", id);
            o.put("object", object);
            o.put("created", created);
            o.put("model", served.name());
            return o;
        }

        /**
         * A chunk of choice {@code index} with {@code text} (null: none, as in the last chat chunk) and a finish
         * reason (null: not yet).
         */
        private ObjectNode chunk(int index, String text, String finish) {
            ObjectNode o = head(request.endpoint().chunkObject);
            ObjectNode choice = o.putArray("choices").addObject();
            choice.put("index", index);
            if (chat()) {
                ObjectNode delta = choice.putObject("delta");
                if (text != null) {
                    delta.put("content", text);
                }
            } else {
                choice.put("text", text);
            }
            choice.putNull("logprobs");
            choice.put("finish_reason", finish);
            if (request.includeUsage()) {
                o.putNull("usage");
            }
            return o;
        }

        /**
         * A choice's {@code logprobs} when asked for: OpenAI's chat form ({@code content}: token, logprob, bytes,
         * top_logprobs) or its completions form (tokens, token_logprobs, top_logprobs, text_offset from
         * {@code textOffset}).
         */
        private void setLogprobs(ObjectNode choice, List<TokenLogprob> logprobs, int textOffset) {
            if (request.logprobs() == null) {
                return;
            }
            var text = served.folder().text();
            ObjectNode out = choice.putObject("logprobs");
            if (chat()) {
                var content = out.putArray("content");
                for (TokenLogprob l : logprobs) {
                    ObjectNode t = token(content.addObject(), text.of(l.id()), l.logprob());
                    var top = t.putArray("top_logprobs");
                    for (int j = 0; j < l.topIds().length; j++) {
                        token(top.addObject(), text.of(l.topIds()[j]), l.topLogprobs()[j]);
                    }
                }
                out.putNull("refusal");
                return;
            }
            var tokens = out.putArray("tokens");
            var values = out.putArray("token_logprobs");
            var tops = out.putArray("top_logprobs");
            var offsets = out.putArray("text_offset");
            int offset = textOffset;
            for (TokenLogprob l : logprobs) {
                String piece = text.of(l.id());
                tokens.add(piece);
                values.add(l.logprob());
                ObjectNode top = tops.addObject();
                for (int j = 0; j < l.topIds().length; j++) {
                    top.put(text.of(l.topIds()[j]), l.topLogprobs()[j]);
                }
                offsets.add(offset);
                offset += piece.length();
            }
        }

        private static ObjectNode token(ObjectNode o, String token, float logprob) {
            o.put("token", token);
            o.put("logprob", logprob);
            var bytes = o.putArray("bytes");
            for (byte b : token.getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
                bytes.add(b & 0xFF);
            }
            return o;
        }

        /** stream_options.include_usage: a last chunk without choices that carries the token counts. */
        ObjectNode usageChunk(List<Generation> generations) {
            ObjectNode o = head(request.endpoint().chunkObject);
            o.putArray("choices");
            o.set("usage", usage(generations));
            return o;
        }

        /** The non-streaming response: one choice per generation, in order. */
        ObjectNode whole(List<Generation> generations, List<ReplyFormat.Reading> splits, int promptLength) {
            ObjectNode o = head(request.endpoint().object);
            var choices = o.putArray("choices");
            for (int i = 0; i < generations.size(); i++) {
                Generation g = generations.get(i);
                ObjectNode choice = choices.addObject();
                choice.put("index", i);
                if (chat()) {
                    ObjectNode message = choice.putObject("message");
                    message.put("role", "assistant");
                    message.put("content", splits.get(i).content());
                    if (splits.get(i).reasoning() != null) {
                        message.put("reasoning_content", splits.get(i).reasoning());
                    }
                    if (!splits.get(i).calls().isEmpty()) {
                        ToolCalls.put(message, splits.get(i).calls(), false);
                    }
                } else {
                    choice.put("text", g.text());
                }
                choice.putNull("logprobs");
                setLogprobs(choice, g.logprobs(), 0);
                choice.put("finish_reason", finishReason(g, splits.get(i)));
            }
            o.set("usage", usage(generations));
            if (experts != null) {
                o.set("moe4j", experts.upTo(promptLength + generations.getFirst().outputIds().length - 1));
            }
            return o;
        }

        /** The prompt counted once, the completions of every choice together (as OpenAI counts them). */
        private ObjectNode usage(List<Generation> generations) {
            int prompt = generations.getFirst().promptIds().length;
            int completion = generations.stream().mapToInt(g -> g.outputIds().length).sum();
            ObjectNode u = Json.mapper().createObjectNode();
            u.put("prompt_tokens", prompt);
            u.put("completion_tokens", completion);
            u.put("total_tokens", prompt + completion);
            // OpenAI's place for the prompt tokens served from a cache
            u.putObject("prompt_tokens_details").put("cached_tokens", generations.getFirst().reusedTokens());
            return u;
        }
    }
}
