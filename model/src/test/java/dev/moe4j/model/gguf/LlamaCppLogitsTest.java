package dev.moe4j.model.gguf;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.backend.CpuBackend;
import dev.moe4j.io.json.Json;
import dev.moe4j.model.LanguageModel;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.Resources;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.family.HfFamilies;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Locale;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

import static org.junit.jupiter.api.Assertions.*;

/**
 * moe4j against llama.cpp on the same GGUF files (src/test/resources/llama-cpp/README.md says how llama.cpp's logits
 * were made): tiny random-weight models of each family in each block type, written again here by make-model's
 * writer and checked byte for byte (sha256) against the files llama.cpp ran. moe4j decodes the prompt in one batch
 * and then the greedy tokens one at a time, as llama.cpp did, so both the packed and the single-row kernels are
 * compared.
 *
 * <p>llama.cpp multiplies block-quantised weights by activations it rounds to 8 bits per block (Q8_0 for Q8_0, Q4_0
 * and MXFP4 weights, Q8_K for the K-quants); moe4j keeps them in F32. So a quantised file is held to two references:
 * llama.cpp on the F32 file its own quantiser writes from it (every block dequantised by ggml, no activation
 * rounding), which moe4j must match as closely as an F32 file; and llama.cpp on the file itself, which moe4j may
 * differ from by no more than llama.cpp's quantised and F32 runs differ from each other, row by row — what the
 * activation rounding explains — with the greedy token equal wherever llama.cpp's top two logits are further apart
 * than twice that.
 */
class LlamaCppLogitsTest {
    /**
     * Of the largest logit: the sums of an F32 forward pass in another order (ggml's SIMD lanes, moe4j's). The worst
     * difference measured, 3.2e-6 (deepseek2 on ggml-dequantised weights), is a third of it.
     */
    private static final double F32_TOLERANCE = 1e-5;

    private static final JsonNode MANIFEST = Json.read(Resources.path("llama-cpp/llama-cpp.json"));
    private static final long SEED = Json.read(Resources.path("llama-cpp/make-model.json")).get("seed").asLong();

    @TempDir
    Path dir;

    static Stream<Arguments> fixtures() {
        return StreamSupport.stream(MANIFEST.get("fixtures").spliterator(), false)
                .map(f -> Arguments.of(f.get("gguf").asText(), f));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("fixtures")
    void moe4jGivesLlamaCppsLogitsWithinWhatLlamaCppsActivationRoundingExplains(String gguf, JsonNode fixture)
            throws IOException {
        int[] prompt = ints(MANIFEST.get("prompt"));
        int[] greedy = ints(fixture.get("greedy"));
        int vocab = fixture.get("vocab").asInt();
        Path file = rewrite(gguf, fixture.get("sha256").asText());
        float[] moe4j = moe4jLogits(file, prompt, greedy, vocab);
        float[] llama = floats(fixture.get("logits").asText());
        assertEquals(llama.length, moe4j.length);
        double scale = maxAbs(llama);
        double difference = maxAbsDifference(moe4j, llama);
        int rows = llama.length / vocab;

        if (!fixture.has("decoded")) { // an F32 file: no activation rounding on either side
            assertTrue(difference <= F32_TOLERANCE * scale, gguf + ": logits differ from llama.cpp's by "
                    + difference / scale + " of the largest");
            for (int row = 0; row < rows; row++) {
                assertEquals(argmax(llama, row, vocab), argmax(moe4j, row, vocab), gguf + ", row " + row);
            }
            System.out.printf(Locale.ROOT, "llama.cpp parity %-24s max |logit| %.3f; moe4j vs llama.cpp: max %.2e;"
                    + " greedy compared at %d of %d rows%n", gguf, scale, difference, rows, rows);
            return;
        }
        float[] decoded = floats(fixture.get("decoded").get("logits").asText());
        double againstDecoded = maxAbsDifference(moe4j, decoded);
        assertTrue(againstDecoded <= F32_TOLERANCE * scale, gguf + ": logits differ from llama.cpp's on the weights"
                + " ggml dequantised by " + againstDecoded / scale + " of the largest: a block is not decoded or"
                + " multiplied as ggml does it");
        // Row by row: where the rounding moves a token's hidden state across a router's tie, another expert runs
        // and that row (and the later ones) move far more than the others.
        double[] rowRoundings = new double[rows], rowDifferences = new double[rows];
        int compared = 0;
        for (int row = 0; row < rows; row++) {
            double rowRounding = maxAbsDifference(llama, decoded, row, vocab);
            double bound = rowRounding + F32_TOLERANCE * scale;
            double rowDifference = maxAbsDifference(moe4j, llama, row, vocab);
            assertTrue(rowDifference <= bound, gguf + ", row " + row + ": logits differ from llama.cpp's by "
                    + rowDifference + ", more than its activation rounding explains (" + rowRounding + ")");
            if (topTwoGap(llama, row, vocab) > 2 * bound) {
                assertEquals(argmax(llama, row, vocab), argmax(moe4j, row, vocab), gguf + ", row " + row
                        + ": another greedy token though llama.cpp's top two are further apart than the bound");
                compared++;
            }
            if (topTwoGap(decoded, row, vocab) > 2 * F32_TOLERANCE * scale) {
                assertEquals(argmax(decoded, row, vocab), argmax(moe4j, row, vocab), gguf + ", row " + row
                        + ": another greedy token than llama.cpp's on the dequantised weights");
            }
            rowRoundings[row] = rowRounding;
            rowDifferences[row] = rowDifference;
        }
        System.out.printf(Locale.ROOT, "llama.cpp parity %-24s max |logit| %.3f; moe4j vs llama.cpp: max %.2e, median"
                        + " row %.2e; llama.cpp quantised vs dequantised: max %.2e, median row %.2e; moe4j vs"
                        + " llama.cpp dequantised: max %.2e; greedy compared at %d of %d rows%n", gguf, scale,
                difference, median(rowDifferences), Arrays.stream(rowRoundings).max().orElseThrow(),
                median(rowRoundings), againstDecoded, compared, rows);
    }

    /** The fixture's GGUF as make-model writes it; its sha256 must be that of the file llama.cpp ran. */
    private Path rewrite(String gguf, String sha256) throws IOException {
        String stem = gguf.replaceFirst("\\.gguf$", "");
        int dash = stem.lastIndexOf('-');
        String family = stem.substring(0, dash);
        ModelConfig config = HfFamilies.read(Json.read(Resources.path("llama-cpp/" + family + ".config.json")),
                family + ".config.json");
        Path file = dir.resolve(gguf);
        GgufConverter.writeRandom(config, family + ".config.json", SEED, file,
                GgufFileType.parse(stem.substring(dash + 1), "the fixture's type"));
        assertEquals(sha256, sha256(file), gguf + " is no longer the file llama.cpp ran: make-model writes other"
                + " bytes; rerun scripts/make_llama_cpp_fixtures.sh");
        return file;
    }

    /** The prompt in one batch, then each greedy token alone: the rows llama.cpp's logits hold. */
    private static float[] moe4jLogits(Path file, int[] prompt, int[] greedy, int vocab) {
        float[] all = new float[(prompt.length + greedy.length) * vocab];
        try (LanguageModel model = ModelLoader.load(file, CpuBackend.INSTANCE, WeightMemory.MAPPED)) {
            var state = model.newState(prompt.length + greedy.length);
            copy(model.forward(state, prompt, false, null), all, 0);
            for (int t = 0; t < greedy.length; t++) {
                copy(model.forward(state, new int[] {greedy[t]}, false, null), all, (prompt.length + t) * vocab);
            }
        }
        return all;
    }

    private static void copy(Tensor logits, float[] all, int offset) {
        for (int i = 0; i < logits.size(); i++) {
            all[offset + i] = logits.getFloat(i);
        }
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    private static double maxAbs(float[] values) {
        double max = 0;
        for (float v : values) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }

    private static double maxAbsDifference(float[] a, float[] b) {
        return maxAbsDifference(a, b, 0, a.length);
    }

    /** Over row {@code row} of rows {@code width} wide. */
    private static double maxAbsDifference(float[] a, float[] b, int row, int width) {
        double max = 0;
        for (int i = row * width; i < (row + 1) * width; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }

    private static int argmax(float[] logits, int row, int vocab) {
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (logits[row * vocab + i] > logits[row * vocab + best]) {
                best = i;
            }
        }
        return best;
    }

    private static double topTwoGap(float[] logits, int row, int vocab) {
        double first = Double.NEGATIVE_INFINITY, second = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            double v = logits[row * vocab + i];
            if (v > first) {
                second = first;
                first = v;
            } else if (v > second) {
                second = v;
            }
        }
        return first - second;
    }

    private static int[] ints(JsonNode array) {
        return StreamSupport.stream(array.spliterator(), false).mapToInt(JsonNode::asInt).toArray();
    }

    private static float[] floats(String resource) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(Resources.path("llama-cpp/" + resource)))
                .order(ByteOrder.LITTLE_ENDIAN);
        float[] values = new float[bytes.remaining() / 4];
        bytes.asFloatBuffer().get(values);
        return values;
    }

    private static String sha256(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
