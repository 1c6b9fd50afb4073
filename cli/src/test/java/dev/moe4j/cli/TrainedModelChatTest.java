package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.ModelFolder;
import dev.moe4j.server.ModelServer;
import dev.moe4j.server.ServedModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A model {@code moe4j train} saved can be chatted with, in the terminal and through the server: the run's folder
 * carries a chat template made of the trained tokenizer's own tokens.
 */
class TrainedModelChatTest {
    @TempDir
    Path dir;

    /** A tiny run on a small corpus, as {@code ./moe4j train --tiny} does on Shakespeare. */
    private Path trainedModel() throws Exception {
        var text = new StringBuilder();
        String[] words = {"the", "king", "shall", "speak", "night", "love", "my", "lord", "good", "and", "thee"};
        for (int line = 0; line < 300; line++) {
            text.append(line % 4 == 0 ? "KING:\n" : "");
            for (int w = 0; w < 6; w++) {
                text.append(w == 0 ? "" : " ").append(words[(line * 7 + w * 3) % words.length]);
            }
            text.append(".\n");
        }
        Path data = dir.resolve("text.txt");
        Files.writeString(data, text);
        Path out = dir.resolve("run");
        var r = Cli.run(Main.DEFAULT_MODELS, "train", "--tiny", "--data", data.toString(), "--cache",
                dir.resolve("cache").toString(), "--out", out.toString(), "--samples", "0");
        assertEquals(0, r.status(), r.err());
        return out;
    }

    @Test
    void aTrainedModelChatsInTheTerminalAndThroughTheServer() throws Exception {
        Path model = trainedModel();
        ChatTemplate template = ModelFolder.chatTemplate(model, null);
        assertEquals("User:\nhi<|endoftext|>\n\nAssistant:\n",
                template.render(List.of(new ChatTemplate.Message("user", "hi")), true));

        var chat = Cli.run(Main.DEFAULT_MODELS, "hello\nand again\n", false, "chat", "--model", model.toString(),
                "--max-tokens", "4", "--seed", "1");
        assertEquals(0, chat.status(), chat.err());
        assertEquals(2, chat.err().lines().filter(l -> l.contains("prompt") && l.contains("reused")).count(),
                chat.err());

        try (var served = ServedModel.open(model, null, null, Main.DEFAULT_MODELS, config -> CpuBackend.INSTANCE);
             var server = ModelServer.start(served, "127.0.0.1", 0, ModelServer.DEFAULT_MAX_REQUEST_BYTES,
                     new PrintWriter(new StringWriter()))) {
            assertNotNull(served.chatTemplate(), served.noChatTemplate());
            var response = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            server.uri().resolve("/v1/chat/completions")).POST(HttpRequest.BodyPublishers.ofString(
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 3}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, response.statusCode(), response.body());
            JsonNode reply = Json.parse(response.body(), "response");
            assertEquals("assistant", reply.get("choices").get(0).get("message").get("role").asText());
        }
    }
}
