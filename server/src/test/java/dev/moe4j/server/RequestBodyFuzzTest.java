package dev.moe4j.server;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.testing.CleanRefusal;
import dev.moe4j.io.json.Json;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fuzzes the request bodies of {@code POST /v1/chat/completions} and {@code /v1/completions} at the parsing layer
 * (what the server does with a body before a request waits for the model): the body is parsed as JSON and read as
 * either endpoint's request, with and without {@code ?experts=1}. It is accepted, or refused as OpenAI's 4xx error
 * with a one-line message; anything else would reach the client as a dropped connection or a 500. Seeds:
 * {@code RequestBodyFuzzTestInputs/}.
 */
class RequestBodyFuzzTest {
    @FuzzTest
    @DictionaryEntries({"\"messages\"", "\"role\"", "\"content\"", "\"user\"", "\"system\"", "\"assistant\"",
            "\"tool\"", "\"prompt\"", "\"model\"", "\"max_tokens\"", "\"max_completion_tokens\"", "\"temperature\"",
            "\"top_p\"", "\"top_k\"", "\"min_p\"", "\"seed\"", "\"stop\"", "\"stream\"", "\"stream_options\"",
            "\"include_usage\"", "\"n\"", "\"moe4j\"", "\"experts\"", "\"type\"", "\"text\"", "\"image_url\"",
            "\"repetition_penalty\"", "\"logprobs\"", "\"tools\"", "true", "null", "-1", "1e309", "9223372036854775808"})
    void anyRequestBodyIsReadOrRefusedWithOneLine(byte[] body) {
        JsonNode json;
        try {
            json = Json.parse(body, "the request body");
        } catch (BadInputException refused) {
            CleanRefusal.requireOneLine(refused.getMessage(), refused);
            return;
        }
        for (var endpoint : CompletionRequest.Endpoint.values()) {
            for (boolean experts : new boolean[] {false, true}) {
                try {
                    CompletionRequest.parse(endpoint, json, experts, "model");
                } catch (ApiError.Refusal refused) {
                    assertTrue(refused.error.status() >= 400 && refused.error.status() < 500,
                            "status " + refused.error.status());
                    CleanRefusal.requireOneLine(refused.error.message(), refused);
                }
            }
        }
    }
}
