package dev.moe4j.model.generate;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The precedence that the command line's flags and the server's request fields share. */
class SamplingRequestTest {
    private static final GenerationConfig SAMPLES = GenerationConfig.read(Json.parse(
            "{\"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.9, \"max_new_tokens\": 40}", "g"), "g");

    private static SamplingRequest request(Boolean sample, Double temperature, Integer topK) {
        return new SamplingRequest(sample, temperature, topK, null, null, null, 5L, null);
    }

    @Test
    void nothingAskedLeavesGenerationConfigThenTransformersDefaults() {
        SamplingConfig none = SamplingRequest.none().resolve(GenerationConfig.none());
        assertFalse(none.sample(), "transformers decodes greedily by default");
        assertEquals(SamplingRequest.DEFAULT_MAX_NEW_TOKENS, SamplingRequest.none().maxNewTokens(GenerationConfig.none()));
        SamplingConfig fromFile = SamplingRequest.none().resolve(SAMPLES);
        assertTrue(fromFile.sample());
        assertEquals(0.6, fromFile.temperature());
        assertEquals(0.9, fromFile.topP());
        assertEquals(50, fromFile.topK(), "transformers' default top-k");
        assertEquals(40, SamplingRequest.none().maxNewTokens(SAMPLES));
    }

    @Test
    void aSamplingSettingTurnsSamplingOnAndATemperatureOfZeroTurnsItOff() {
        assertTrue(request(null, null, 5).resolve(GenerationConfig.none()).sample(), "top-k implies sampling");
        SamplingConfig warm = request(null, 1.3, null).resolve(GenerationConfig.none());
        assertTrue(warm.sample());
        assertEquals(1.3, warm.temperature());
        assertFalse(request(null, 0.0, 5).resolve(SAMPLES).sample(), "temperature 0 is greedy");
        assertFalse(request(true, 0.0, null).resolve(SAMPLES).sample(), "even when sampling is asked for");
        assertFalse(request(false, 1.3, 5).resolve(SAMPLES).sample(), "greedy wins over everything");
        assertTrue(request(true, null, null).resolve(GenerationConfig.none()).sample());
    }

    @Test
    void aGivenSeedAndBudgetAreKeptAndAMissingSeedIsDrawn() {
        assertEquals(5L, request(true, null, null).resolve(GenerationConfig.none()).seed());
        var budget = new SamplingRequest(null, null, null, null, null, null, null, 7);
        assertEquals(7, budget.maxNewTokens(SAMPLES));
        long a = SamplingRequest.none().resolve(GenerationConfig.none()).seed();
        long b = SamplingRequest.none().resolve(GenerationConfig.none()).seed();
        assertNotEquals(a, b, "a fresh random seed each time (equal by chance once in 2^64)");
    }

    @Test
    void anOutOfRangeValueIsABadInputNamingWhatIsWrong() {
        var topP = new SamplingRequest(null, null, null, 1.5, null, null, null, null);
        var e = assertThrows(BadInputException.class, () -> topP.resolve(GenerationConfig.none()));
        assertTrue(e.getMessage().contains("top-p"), e.getMessage());
    }
}
