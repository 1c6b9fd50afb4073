package dev.moe4j.model.generate;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.testing.ToyModel;
import dev.moe4j.model.testing.ToyText;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class ExpertTraceTest {
    @TempDir
    Path dir;

    @Test
    void oneLinePerTokenPerLayerWithTheTokenItsExpertsAndWeights() {
        var model = new ToyModel(64, 32, 2);
        var trace = new ExpertTrace();
        int[] tokens = {3, 7, 12};
        model.forward(model.newState(8), tokens, true, trace);
        List<String> lines = trace.jsonLines(tokens, new ToyText(), Map.of());
        assertEquals(6, lines.size());
        JsonNode second = Json.parse(lines.get(1), "line");
        assertEquals(0, second.get("position").asInt());
        assertEquals(3, second.get("token_id").asInt());
        assertEquals(" 3", second.get("token").asText());
        assertEquals(1, second.get("layer").asInt());
        assertEquals("[0,1]", second.get("experts").toString(), "(3 + 1) mod 4 and (3 + 2) mod 4");
        assertEquals("[0.75,0.25]", second.get("weights").toString());
        JsonNode last = Json.parse(lines.get(5), "line");
        assertEquals(2, last.get("position").asInt());
        assertEquals("w12", last.get("token").asText());
    }

    @Test
    void positionsBeforeFromAreNotRecorded() {
        var model = new ToyModel(64, 32, 1);
        var trace = new ExpertTrace();
        trace.from(2);
        model.forward(model.newState(8), new int[] {3, 7, 12, 1}, true, trace);
        assertEquals(List.of(2, 3), trace.routes().stream().map(ExpertTrace.Route::position).toList());
        assertTrue(trace.firstExpert(1, 0).isEmpty());
        assertEquals(12 % ToyModel.EXPERTS, trace.firstExpert(2, 0).getAsInt());
    }

    @Test
    void extraFieldsComeFirstOnEveryLine() {
        var model = new ToyModel(64, 32, 1);
        var trace = new ExpertTrace();
        model.forward(model.newState(8), new int[] {3}, true, trace);
        assertTrue(trace.jsonLines(new int[] {3}, new ToyText(), Map.of("turn", 2)).getFirst()
                .startsWith("{\"turn\":2,\"position\":0"));
    }

    @Test
    void linesAreWrittenAtomicallyAndAFailureLeavesNothingBehind() throws IOException {
        Path file = dir.resolve("trace.jsonl");
        ExpertTrace.writeLines(file, List.of("{\"a\":1}", "{\"a\":2}"));
        assertEquals("{\"a\":1}\n{\"a\":2}\n", Files.readString(file));
        try (var listing = Files.list(dir)) {
            assertEquals(List.of(file), listing.toList(), "no temporary file is left");
        }
        Path blocked = dir.resolve("a-file");
        Files.writeString(blocked, "x");
        assertThrows(BadInputException.class, () -> ExpertTrace.writeLines(blocked.resolve("trace.jsonl"),
                List.of("{}")));
    }
}
