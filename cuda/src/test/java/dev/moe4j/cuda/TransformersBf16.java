package dev.moe4j.cuda;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.io.json.Json;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * How far transformers' own BF16 runs land from its float32 fixtures, measured on the H100 by
 * scripts/device/torch_precision_errors.py (torch-precision-errors.json beside this class): the yardstick that says
 * what BF16 arithmetic can reach on each fixture. Two ways of running transformers in BF16 are measured, the model
 * cast to BF16 and the float32 model under autocast; the better of the two is the yardstick.
 */
public final class TransformersBf16 {
    private static final JsonNode ERRORS = read();

    private TransformersBf16() {
    }

    private static JsonNode read() {
        try (InputStream in = TransformersBf16.class.getResourceAsStream("torch-precision-errors.json")) {
            if (in == null) {
                throw new IllegalStateException("torch-precision-errors.json is missing beside " + TransformersBf16.class);
            }
            return Json.parse(in.readAllBytes(), "torch-precision-errors.json");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The logits' relative error (max|Δ| / max|ref|) of transformers' better BF16 run of a fixture model. */
    public static double logitsError(String fixture) {
        JsonNode e = ERRORS.get("logits").get(fixture);
        if (e == null) {
            throw new IllegalArgumentException("no transformers BF16 measurement of " + fixture);
        }
        return Math.min(e.get("bf16").asDouble(), e.get("autocast_bf16").asDouble());
    }

    /** The worst gradient's relative error of transformers' better BF16 training step (train-step fixtures only). */
    public static double worstGradientError(String fixture) {
        JsonNode e = ERRORS.get("train_step").get(fixture);
        if (e == null) {
            throw new IllegalArgumentException("no transformers BF16 train step of " + fixture);
        }
        return Math.min(e.get("bf16").get("worst").asDouble(), e.get("autocast_bf16").get("worst").asDouble());
    }

    /** How many of the step's gradients transformers' autocast BF16 step puts beyond 1e-2, as "n of m". */
    public static String autocastGradientsBeyond1e2(String fixture) {
        JsonNode e = ERRORS.get("train_step").get(fixture).get("autocast_bf16");
        return e.get("over_1e-2").size() + " of " + e.get("gradients").size();
    }
}
