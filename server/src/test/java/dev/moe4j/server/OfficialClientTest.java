package dev.moe4j.server;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The server as OpenAI's official Java client sees it (com.openai:openai-java, its OkHttp transport): every response
 * passes the client's own validation of OpenAI's schema, and what it reads (choices, streamed deltas, usage,
 * log-probabilities, n choices) is what moe4j answered.
 */
class OfficialClientTest {
    @TempDir
    static Path dir;

    private static TestServer server;
    private static OpenAIClient client;

    @BeforeAll
    static void start() {
        server = TestServer.start(TestServer.modelFolder("mixtral", dir, true));
        client = OpenAIOkHttpClient.builder().baseUrl(server.server.uri() + "v1").apiKey("not-needed")
                .maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        client.close();
        server.close();
    }

    private static ChatCompletionCreateParams.Builder chat() {
        return ChatCompletionCreateParams.builder().model("mixtral").addUserMessage("Tell me a story")
                .maxCompletionTokens(6).temperature(0.0);
    }

    @Test
    void aChatCompletionPassesTheClientsValidationWithUsage() {
        ChatCompletion c = client.chat().completions().create(chat().build()).validate();
        assertEquals(1, c.choices().size());
        assertTrue(c.choices().getFirst().message().content().isPresent());
        var usage = c.usage().orElseThrow();
        assertTrue(usage.completionTokens() > 0 && usage.promptTokens() > 0);
        assertEquals(usage.promptTokens() + usage.completionTokens(), usage.totalTokens());
    }

    @Test
    void aStreamedChatGivesTheWholeRepliesTextAndItsUsageLast() {
        String whole = client.chat().completions().create(chat().build()).choices().getFirst().message().content()
                .orElse("");
        var text = new StringBuilder();
        var usage = new ArrayList<Long>();
        var params = chat().streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build();
        try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params)) {
            stream.stream().forEach(chunk -> {
                chunk.validate();
                chunk.choices().forEach(choice -> choice.delta().content().ifPresent(text::append));
                chunk.usage().ifPresent(u -> usage.add(u.completionTokens()));
            });
        }
        assertEquals(whole, text.toString());
        assertEquals(1, usage.size());
    }

    @Test
    void nChoicesWithLogprobsArriveAsTheClientExpectsThem() {
        ChatCompletion c = client.chat().completions().create(chat().n(3).temperature(1.2).seed(4).logprobs(true)
                .topLogprobs(2).presencePenalty(0.5).build()).validate();
        assertEquals(3, c.choices().size());
        for (int i = 0; i < 3; i++) {
            var choice = c.choices().get(i);
            assertEquals(i, choice.index());
            var content = choice.logprobs().orElseThrow().content().orElseThrow();
            assertTrue(!content.isEmpty());
            content.forEach(token -> {
                assertTrue(token.logprob() <= 0);
                assertEquals(2, token.topLogprobs().size());
            });
        }
        Completion text = client.completions().create(CompletionCreateParams.builder().model("mixtral")
                .prompt("Once upon a time").maxTokens(4).temperature(0.0).n(2).logprobs(1).build()).validate();
        assertEquals(2, text.choices().size());
        List<String> tokens = text.choices().getFirst().logprobs().orElseThrow().tokens().orElseThrow();
        assertEquals(text.usage().orElseThrow().completionTokens(), 2L * tokens.size());
    }
}
