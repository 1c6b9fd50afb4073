package dev.moe4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.model.generate.ExpertTrace;
import dev.moe4j.model.generate.Generation;
import dev.moe4j.model.generate.GenerationListener;
import dev.moe4j.model.generate.GenerationOptions;
import dev.moe4j.model.generate.Generator;
import dev.moe4j.model.generate.SamplingConfig;
import dev.moe4j.model.generate.SequenceCache;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The generating endpoints on the mixtral fixture (a tiny random Mixtral that transformers saved, with Mixtral's
 * chat template), checked against transformers' greedy continuation and against the {@link Generator} that
 * {@code moe4j generate} runs, fed the same ids.
 */
class CompletionsTest {
    @TempDir
    static Path dir;

    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start(TestServer.modelFolder("mixtral", dir, true));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static final int[][] REFERENCE = TestServer.referenceGreedy("mixtral");
    private static final String REFERENCE_PROMPT = TestServer.idList(REFERENCE[0]);

    /** What {@code moe4j generate --greedy --max-tokens n} produces from {@code prompt}, with its expert trace. */
    private static Generation direct(int[] prompt, int maxTokens, List<String> stops, ExpertTrace trace) {
        var folder = server.served.folder();
        var options = new GenerationOptions(maxTokens, SamplingConfig.greedy(), folder.eosTokenIds(), stops, trace,
                trace != null);
        return new Generator(folder.model(), folder.text()).generate(prompt, options, GenerationListener.NONE);
    }

    private static int[] chatPrompt(String user) {
        ChatTemplate template = server.served.chatTemplate();
        String text = template.render(List.of(new ChatTemplate.Message("user", user)), true);
        return server.served.folder().tokenizer().encodeIds(text, false);
    }

    @Test
    void greedyCompletionOfTokenIdsIsTransformersGreedyContinuation() {
        int[] expected = REFERENCE[1];
        JsonNode r = TestServer.ok(server.post("/v1/completions", """
                {"model": "mixtral", "prompt": [%s], "max_tokens": %d, "temperature": 0, "moe4j": {"experts": true}}"""
                .formatted(REFERENCE_PROMPT, expected.length)));
        assertTrue(r.get("id").asText().startsWith("cmpl-"), r.toString());
        assertEquals("text_completion", r.get("object").asText());
        assertEquals("mixtral", r.get("model").asText());
        assertTrue(r.get("created").asLong() > 0);
        JsonNode choice = r.get("choices").get(0);
        assertEquals(1, r.get("choices").size());
        assertEquals(0, choice.get("index").asInt());
        assertEquals(direct(REFERENCE[0], expected.length, List.of(), null).text(), choice.get("text").asText(),
                "the text moe4j generate streams for these ids");
        assertEquals("length", choice.get("finish_reason").asText());
        assertEquals(REFERENCE[0].length, r.get("usage").get("prompt_tokens").asInt());
        assertEquals(expected.length, r.get("usage").get("completion_tokens").asInt());
        assertEquals(REFERENCE[0].length + expected.length, r.get("usage").get("total_tokens").asInt());
        JsonNode tokens = r.get("moe4j").get("tokens");
        int[] ids = new int[tokens.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tokens.get(i).get("token_id").asInt();
        }
        assertArrayEquals(expected, ids, "the extension names the tokens transformers generates");
    }

    @Test
    void aStreamedCompletionIsServerSentEventsThatAddUpToTheWholeResponse() {
        String request = """
                {"prompt": [%s], "max_tokens": 12, "temperature": 0%s}""";
        JsonNode whole = TestServer.ok(server.post("/v1/completions", request.formatted(REFERENCE_PROMPT, "")));
        List<JsonNode> events = TestServer.events(server.post("/v1/completions",
                request.formatted(REFERENCE_PROMPT, ", \"stream\": true")));
        var text = new StringBuilder();
        String id = events.getFirst().get("id").asText();
        for (int i = 0; i < events.size(); i++) {
            JsonNode e = events.get(i);
            assertEquals(id, e.get("id").asText(), "one id for every chunk");
            assertEquals("text_completion", e.get("object").asText());
            JsonNode choice = e.get("choices").get(0);
            text.append(choice.get("text").asText());
            boolean last = i == events.size() - 1;
            assertEquals(last ? "length" : null, choice.get("finish_reason").textValue(), "chunk " + i);
            assertFalse(e.has("usage"), "usage only with stream_options.include_usage");
            assertFalse(e.has("moe4j"), "no expert extension unless asked");
        }
        assertTrue(events.size() > 2, "the reply streams in pieces");
        assertEquals(whole.get("choices").get(0).get("text").asText(), text.toString());
    }

    @Test
    void aChatCompletionRendersTheMessagesWithTheModelsChatTemplate() {
        int[] prompt = chatPrompt("Who are you?");
        Generation expected = direct(prompt, 10, List.of(), null);
        String request = """
                {"messages": [{"role": "user", "content": "Who are you?"}], "max_completion_tokens": 10,
                 "temperature": 0%s}""";
        JsonNode r = TestServer.ok(server.post("/v1/chat/completions", request.formatted("")));
        assertTrue(r.get("id").asText().startsWith("chatcmpl-"));
        assertEquals("chat.completion", r.get("object").asText());
        JsonNode choice = r.get("choices").get(0);
        assertEquals("assistant", choice.get("message").get("role").asText());
        assertEquals(expected.text(), choice.get("message").get("content").asText());
        assertEquals("length", choice.get("finish_reason").asText());
        assertEquals(prompt.length, r.get("usage").get("prompt_tokens").asInt(), "the template's prompt, no BOS added");
        assertEquals(10, r.get("usage").get("completion_tokens").asInt());

        List<JsonNode> events = TestServer.events(server.post("/v1/chat/completions", request.formatted(
                ", \"stream\": true, \"stream_options\": {\"include_usage\": true}")));
        JsonNode first = events.getFirst().get("choices").get(0);
        assertEquals("assistant", first.get("delta").get("role").asText(), "the first chunk names the role");
        assertEquals("", first.get("delta").get("content").asText());
        var content = new StringBuilder();
        for (JsonNode e : events.subList(0, events.size() - 1)) {
            assertEquals("chat.completion.chunk", e.get("object").asText());
            assertTrue(e.get("usage").isNull(), "usage is null until the last chunk");
            content.append(e.get("choices").get(0).get("delta").path("content").asText(""));
        }
        assertEquals(expected.text(), content.toString());
        JsonNode finish = events.get(events.size() - 2).get("choices").get(0);
        assertEquals("length", finish.get("finish_reason").asText());
        assertTrue(finish.get("delta").isEmpty(), "the finishing chunk's delta is empty");
        JsonNode usage = events.getLast();
        assertTrue(usage.get("choices").isEmpty(), "the usage chunk has no choices");
        assertEquals(prompt.length, usage.get("usage").get("prompt_tokens").asInt());
        assertEquals(10, usage.get("usage").get("completion_tokens").asInt());
    }

    @Test
    void theExpertExtensionReportsEachGeneratedTokensFirstExpertInEveryMoeLayer() {
        int[] prompt = REFERENCE[0];
        var trace = new ExpertTrace();
        Generation expected = direct(prompt, 12, List.of(), trace);
        String request = """
                {"prompt": [%s], "max_tokens": 12, "temperature": 0, "stream": true%s}""";
        for (String how : List.of("body", "query")) {
            List<JsonNode> events = TestServer.events(how.equals("body")
                    ? server.post("/v1/completions", request.formatted(REFERENCE_PROMPT, ", \"moe4j\": {\"experts\": true}"))
                    : server.post("/v1/completions?experts=1", request.formatted(REFERENCE_PROMPT, "")));
            var tokens = new ArrayList<JsonNode>();
            for (JsonNode e : events) {
                JsonNode ext = e.get("moe4j");
                assertNotNull(ext, how + ": every chunk carries the extension");
                assertEquals("[0,1]", ext.get("layers").toString(), "both Mixtral layers are MoE layers");
                ext.get("tokens").forEach(tokens::add);
                if (!e.get("choices").get(0).get("text").asText().isEmpty()) {
                    assertFalse(ext.get("tokens").isEmpty(), how + ": text comes with the tokens that made it");
                }
            }
            assertEquals(expected.outputIds().length, tokens.size(), how + ": every token once");
            for (int i = 0; i < tokens.size(); i++) {
                JsonNode t = tokens.get(i);
                assertEquals(i, t.get("index").asInt());
                assertEquals(expected.outputIds()[i], t.get("token_id").asInt());
                for (int layer = 0; layer < 2; layer++) {
                    var route = trace.route(prompt.length + i, layer).orElseThrow();
                    assertEquals(route.experts()[0], t.get("experts").get(layer).asInt(), "token " + i + " layer " + layer);
                    assertEquals(route.weights()[0], t.get("weights").get(layer).floatValue(), "token " + i);
                    assertTrue(route.weights()[0] > 0 && route.weights()[0] <= 1);
                }
            }
        }
    }

    @Test
    void aRequestExtendingTheLastSequenceIsFedFromItsKeptCacheAndAnswersAsAFreshPrefill() {
        String request = """
                {"messages": [%s], "max_tokens": 6, "temperature": 0}""";
        String user = "{\"role\": \"user\", \"content\": \"Tell me a story.\"}";
        JsonNode first = TestServer.ok(server.post("/v1/chat/completions", request.formatted(user)));
        String reply = first.get("choices").get(0).get("message").get("content").asText();
        int[] prompt1 = chatPrompt("Tell me a story.");
        assertTrue(first.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt() < prompt1.length,
                "at most the template's opening came from an earlier request: " + first);

        // what the first request left in the server's cache: its prompt and the reply tokens that were fed
        var folder = server.served.folder();
        var held = new SequenceCache();
        var options = new GenerationOptions(6, SamplingConfig.greedy(), folder.eosTokenIds(), List.of(), null, false);
        new Generator(folder.model(), folder.text()).generate(held, prompt1, options, GenerationListener.NONE);
        var messages = List.of(new ChatTemplate.Message("user", "Tell me a story."),
                new ChatTemplate.Message("assistant", reply), new ChatTemplate.Message("user", "And then?"));
        int[] prompt2 = folder.tokenizer().encodeIds(server.served.chatTemplate().render(messages, true), false);
        int cached = SequenceCache.commonPrefix(held.ids(), prompt2);
        assertTrue(cached >= prompt1.length - 1, "the first prompt is kept: " + cached);

        JsonNode second = TestServer.ok(server.post("/v1/chat/completions", request.formatted(user
                + ", {\"role\": \"assistant\", \"content\": " + Json.compact(Json.mapper().valueToTree(reply))
                + "}, {\"role\": \"user\", \"content\": \"And then?\"}")));
        assertEquals(prompt2.length, second.get("usage").get("prompt_tokens").asInt());
        assertEquals(cached, second.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt());
        assertEquals(direct(prompt2, 6, List.of(), null).text(),
                second.get("choices").get(0).get("message").get("content").asText(), "the reply of a fresh prefill");
    }

    @Test
    void aStopStringEndsTheReplyWithFinishReasonStop() {
        Generation full = direct(REFERENCE[0], 12, List.of(), null);
        String text = full.text();
        String stop = text.substring(text.length() / 2, text.length() / 2 + 1);
        JsonNode r = TestServer.ok(server.post("/v1/completions", """
                {"prompt": [%s], "max_tokens": 12, "temperature": 0, "stop": ["%s"]}"""
                .formatted(REFERENCE_PROMPT, stop.replace("\\", "\\\\").replace("\"", "\\\""))));
        JsonNode choice = r.get("choices").get(0);
        assertEquals("stop", choice.get("finish_reason").asText());
        assertEquals(text.substring(0, text.indexOf(stop)), choice.get("text").asText());
    }

    @Test
    void theSameSeedGivesTheSameSampleAndAnotherSeedAnotherOne() {
        String request = """
                {"prompt": "Once upon", "max_tokens": 24, "temperature": 1.5, "top_k": 0, "seed": %d}""";
        String a = TestServer.ok(server.post("/v1/completions", request.formatted(7))).get("choices").get(0)
                .get("text").asText();
        String b = TestServer.ok(server.post("/v1/completions", request.formatted(7))).get("choices").get(0)
                .get("text").asText();
        String c = TestServer.ok(server.post("/v1/completions", request.formatted(8))).get("choices").get(0)
                .get("text").asText();
        assertEquals(a, b);
        assertNotEquals(a, c);
    }

    @Test
    void aTextPromptGetsTheTokenizersSpecialTokensAndUnsetFieldsComeFromGenerationConfig() {
        int[] ids = server.served.folder().tokenizer().encodeIds("hello world", true);
        assertEquals(1, ids[0], "Mixtral's tokenizer starts with <s>");
        JsonNode r = TestServer.ok(server.post("/v1/completions", """
                {"prompt": "hello world", "max_tokens": 3}"""));
        assertEquals(ids.length, r.get("usage").get("prompt_tokens").asInt());
        Generation expected = direct(ids, 3, List.of(), null);
        assertEquals(expected.text(), r.get("choices").get(0).get("text").asText(),
                "unset fields come from generation_config.json (greedy here)");
    }

    @Test
    void nChoicesAreSampledEachWithItsOwnSeedAndCountedTogether() {
        String body = "{\"prompt\": [" + REFERENCE_PROMPT + "], \"max_tokens\": 6, \"n\": 3, \"temperature\": 1.5, "
                + "\"seed\": 11}";
        JsonNode whole = TestServer.ok(server.post("/v1/completions", body));
        JsonNode choices = whole.get("choices");
        assertEquals(3, choices.size());
        var texts = new java.util.ArrayList<String>();
        int completion = 0;
        for (int i = 0; i < 3; i++) {
            assertEquals(i, choices.get(i).get("index").asInt());
            texts.add(choices.get(i).get("text").asText());
            // choice i is what a request with seed 11 + i alone gives
            String alone = "{\"prompt\": [" + REFERENCE_PROMPT + "], \"max_tokens\": 6, \"temperature\": 1.5, "
                    + "\"seed\": " + (11 + i) + "}";
            JsonNode single = TestServer.ok(server.post("/v1/completions", alone));
            assertEquals(single.get("choices").get(0).get("text").asText(), texts.get(i), "choice " + i);
            completion += single.get("usage").get("completion_tokens").asInt();
        }
        assertTrue(new java.util.HashSet<>(texts).size() > 1, "different seeds, different samples: " + texts);
        assertEquals(completion, whole.get("usage").get("completion_tokens").asInt());
        assertEquals(REFERENCE[0].length, whole.get("usage").get("prompt_tokens").asInt(), "the prompt counts once");

        var events = TestServer.events(server.post("/v1/completions", body.replace("}", ", \"stream\": true}")));
        var streamed = new String[] {"", "", ""};
        int finishes = 0;
        for (JsonNode e : events) {
            for (JsonNode c : e.get("choices")) {
                int index = c.get("index").asInt();
                streamed[index] += c.get("text").asText();
                finishes += c.get("finish_reason").isNull() ? 0 : 1;
            }
        }
        assertEquals(texts, List.of(streamed), "the stream's choices are the whole reply's");
        assertEquals(3, finishes);
        assertEquals(400, server.post("/v1/completions", body.replace("\"n\": 3", "\"n\": 17")).statusCode());
        assertEquals(400, server.post("/v1/completions?experts=1", body).statusCode(), "the trace follows one choice");
    }

    @Test
    void logprobsAreTheModelsLogSoftmaxInOpenAisShapes() {
        String chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 5, "
                + "\"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 2}";
        JsonNode whole = TestServer.ok(server.post("/v1/chat/completions", chat));
        JsonNode content = whole.get("choices").get(0).get("logprobs").get("content");
        assertEquals(whole.get("usage").get("completion_tokens").asInt(), content.size());
        // the first token's logprob is the log-softmax of the model's logits after the prompt
        int[] prompt = chatPrompt("hi");
        var model = server.served.folder().model();
        float[] logits = model.forward(model.newState(prompt.length + 1), prompt, true, null).toFloatArray();
        double max = Double.NEGATIVE_INFINITY, sum = 0;
        int best = 0;
        for (int t = 0; t < logits.length; t++) {
            max = Math.max(max, logits[t]);
            best = logits[t] > logits[best] ? t : best;
        }
        for (float v : logits) {
            sum += Math.exp(v - max);
        }
        JsonNode first = content.get(0);
        assertEquals(logits[best] - max - Math.log(sum), first.get("logprob").asDouble(), 1e-5);
        assertEquals(server.served.folder().text().of(best), first.get("token").asText());
        assertEquals(2, first.get("top_logprobs").size());
        assertEquals(first.get("logprob").asDouble(), first.get("top_logprobs").get(0).get("logprob").asDouble(), 1e-6,
                "greedy: the chosen token is the most likely");

        var streamed = new java.util.ArrayList<JsonNode>();
        for (JsonNode e : TestServer.events(server.post("/v1/chat/completions", chat.replace("}", ", \"stream\": true}")))) {
            JsonNode lp = e.get("choices").isEmpty() ? null : e.get("choices").get(0).get("logprobs");
            if (lp != null && !lp.isNull()) {
                lp.get("content").forEach(streamed::add);
            }
        }
        assertEquals(content.size(), streamed.size());
        for (int i = 0; i < streamed.size(); i++) {
            assertEquals(content.get(i).get("token").asText(), streamed.get(i).get("token").asText());
            assertEquals(content.get(i).get("logprob").asDouble(), streamed.get(i).get("logprob").asDouble(), 1e-6);
        }

        JsonNode text = TestServer.ok(server.post("/v1/completions", "{\"prompt\": [" + REFERENCE_PROMPT
                + "], \"max_tokens\": 4, \"temperature\": 0, \"logprobs\": 1}")).get("choices").get(0).get("logprobs");
        assertEquals(4, text.get("tokens").size());
        assertEquals(4, text.get("token_logprobs").size());
        assertEquals(4, text.get("top_logprobs").size());
        assertEquals(0, text.get("text_offset").get(0).asInt());
        assertEquals(400, server.post("/v1/chat/completions", chat.replace("\"logprobs\": true, ", "")).statusCode());
        assertEquals(400, server.post("/v1/completions", "{\"prompt\": \"a\", \"logprobs\": 6}").statusCode());
    }

    @Test
    void aRequestBeginningLikeAnEarlierOneTakesItsBlocksFromThePrefixCacheAndAnswersAsAFreshPrefill() {
        int[] system = IntStream.range(0, 40).map(i -> (37 * i + 11) % 500 + 1).toArray();
        int[] first = IntStream.concat(IntStream.of(system), IntStream.of(3, 4)).toArray();
        int[] later = IntStream.concat(IntStream.of(system), IntStream.of(5, 6, 7)).toArray();
        String request = "{\"prompt\": [%s], \"max_tokens\": %d, \"temperature\": 0}";
        TestServer.ok(server.post("/v1/completions", request.formatted(TestServer.idList(first), 2)));
        // requests of other beginnings take the server's idle caches' places, so the first one's cache is given back:
        // only the prefix cache keeps its blocks
        for (int i = 0; i <= ModelServer.DEFAULT_PARALLEL; i++) {
            TestServer.ok(server.post("/v1/completions", request.formatted(500 - i + ", 2, 3", 1)));
        }
        JsonNode r = TestServer.ok(server.post("/v1/completions", request.formatted(TestServer.idList(later), 6)));
        assertEquals(32, r.get("usage").get("prompt_tokens_details").get("cached_tokens").asInt(),
                "the two whole blocks of 16 positions the prompts share: " + r);
        assertEquals(direct(later, 6, List.of(), null).text(), r.get("choices").get(0).get("text").asText());
        String metrics = server.get("/metrics").body();
        assertTrue(metrics.matches("(?s).*moe4j_prompt_tokens_cached_total [1-9].*"), metrics);
        assertTrue(metrics.matches("(?s).*moe4j_kv_cache_blocks\\{state=\"cached\"} [1-9].*"), metrics);
    }

    @Test
    void metricsCountRequestsTokensLatenciesAndEachExpertsTokensInPrometheusFormat() {
        TestServer.ok(server.post("/v1/completions", "{\"prompt\": [" + REFERENCE_PROMPT + "], \"max_tokens\": 3}"));
        var response = server.get("/metrics");
        assertEquals(200, response.statusCode());
        assertTrue(response.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"));
        String text = response.body();
        assertTrue(text.matches("(?s).*moe4j_requests_total\\{endpoint=\"completions\",outcome=\"length\"} [1-9].*"),
                text);
        assertTrue(text.contains("moe4j_time_to_first_token_seconds_bucket"), text);
        var gaps = java.util.regex.Pattern.compile("moe4j_inter_token_latency_seconds_count (\\S+)").matcher(text);
        assertTrue(gaps.find() && Double.parseDouble(gaps.group(1)) >= 2, "one gap per pair of tokens: " + text);
        assertTrue(text.contains("moe4j_requests_running 0"), text);
        // nothing runs now: the finished request gave its KV cache back; the test server sets no budget
        for (String gauge : List.of("moe4j_kv_cache_filled_bytes 0", "moe4j_kv_cache_reserved_bytes 0",
                "moe4j_kv_cache_budget_bytes 0")) {
            assertTrue(text.contains(gauge), gauge + " in " + text);
        }
        var expert = java.util.regex.Pattern.compile("moe4j_expert_tokens_total\\{expert=\"(\\d+)\",layer=\"(\\d+)\"} (\\S+)")
                .matcher(text);
        double tokens = 0;
        while (expert.find()) {
            tokens += Double.parseDouble(expert.group(3));
        }
        // the mixtral fixture routes each token to 2 experts in each of its 2 MoE layers
        assertTrue(tokens >= 2 * 2 * (REFERENCE[0].length + 3 - 1), "tokens counted by the experts: " + tokens);
        assertTrue(text.matches("(?s).*moe4j_expert_imbalance\\{layer=\"1\"} [0-9.]+.*"), text);
    }
}
