package dev.moe4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.io.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.TreeMap;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** Runs the real {@code moe4j inspect} command line and checks what it prints and its exit status. */
class InspectCommandTest {
    @TempDir
    Path dir;

    private record Result(int status, String out, String err) {
    }

    private static Result run(String... args) {
        var out = new StringWriter();
        var err = new StringWriter();
        int status = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Result(status, out.toString(), err.toString());
    }

    private static Path resource(String name) {
        try {
            return Path.of(InspectCommandTest.class.getClassLoader().getResource(name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void aPublishedConfigNeedsNoWeights() {
        var r = run("inspect", resource("published/mixtral-8x7b.json").toString());
        assertEquals(0, r.status(), r.err());
        assertEquals("", r.err());
        assertTrue(r.out().contains("mixtral (MixtralForCausalLM)"), r.out());
        assertTrue(r.out().contains("grouped-query: 32 heads, 8 key/value heads, head dim 128"), r.out());
        assertTrue(r.out().contains("8 routed, top-2, width 14336; no shared experts"), r.out());
        assertTrue(r.out().contains("46.7B total, 12.9B active per token (embeddings and LM head included in both)"),
                r.out());
        assertTrue(r.out().contains("theta 1000000, no scaling"), r.out());
        assertFalse(r.out().contains("weights"), "no weights were given");
    }

    @Test
    void latentAttentionAndGroupedSigmoidRoutingAreDescribed() {
        var r = run("inspect", resource("published/deepseek-v3.json").toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("latent (MLA): 128 heads, query rank 1536, key/value rank 512"), r.out());
        assertTrue(r.out().contains("sigmoid, selection bias, best 4 of 8 groups, top-8, renormalised, scaled by 2.5"),
                r.out());
        assertTrue(r.out().contains("61 (3 dense, 58 MoE)"), r.out());
        assertTrue(r.out().contains("671.0B total"), r.out());
        assertTrue(r.out().contains("1 multi-token-prediction module(s) beside the model, not counted"), r.out());
    }

    @Test
    void gptOssShowsItsCardsActiveCountWithoutTheInputEmbedding() {
        var r = run("inspect", resource("published/gpt-oss-120b.json").toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("116.8B total"), r.out());
        assertTrue(r.out().contains("active without the input embedding: 5.13B"), r.out());
        assertTrue(r.out().contains("18 with a sliding window of 128 tokens, 18 with full attention"), r.out());
        assertTrue(r.out().contains("attention sinks"), r.out());
    }

    @Test
    void jsonIsOneObjectForScripts() {
        var r = run("inspect", "--json", resource("published/deepseek-v3.json").toString());
        assertEquals(0, r.status(), r.err());
        JsonNode json = Json.parse(r.out(), "stdout");
        assertEquals(671_026_419_200L, json.get("parameters").get("total").asLong());
        assertEquals(json.get("parameters").get("active").asLong(),
                json.get("parameters").get("active_without_input_embedding").asLong()
                        + json.get("parameters").get("embeddings").asLong());
        assertEquals("embeddings and LM head included in both", json.get("parameters").get("convention").asText());
        assertEquals("latent", json.get("config").get("attention").get("kind").asText());
        assertEquals(256, json.get("config").get("moe").get("experts").asInt());
        assertFalse(json.has("weights"));
    }

    @Test
    void aModelFolderAddsItsWeightsBytesPerDtypeAndTensors() throws IOException {
        Path model = shardedCheckpoint();
        var r = run("inspect", "--tensors", model.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("4 files, 65 tensors, 772,736 bytes"), r.out());
        assertTrue(r.out().matches("(?s).*\\n +BF16 +772,736 bytes \\(772\\.7 kB\\)\\n.*"), r.out());
        assertTrue(r.out().contains("386,368 elements in the tensors, as the config counts"), r.out());
        assertTrue(r.out().matches("(?s).*model\\.norm\\.weight +BF16\\[64\\] +model-00004-of-00004\\.safetensors.*"),
                r.out());

        var json = Json.parse(run("inspect", "--json", "--tensors", model.toString()).out(), "stdout");
        assertEquals(772_736, json.get("weights").get("bytes_by_dtype").get("BF16").asLong());
        assertEquals(65, json.get("weights").get("tensors").size());
        assertEquals(386_368, json.get("parameters").get("total").asLong());

        var withoutList = run("inspect", model.toString());
        assertFalse(withoutList.out().contains("model.norm.weight"), "tensors are listed only when asked");
    }

    @Test
    void aBareSafetensorsFileShowsItsTensorsOnly() throws IOException {
        Path shard = shardedCheckpoint().resolve("model-00004-of-00004.safetensors");
        var r = run("inspect", shard.toString());
        assertEquals(0, r.status(), r.err());
        assertTrue(r.out().contains("1 file, 5 tensors, 24,704 bytes"), r.out());
        assertTrue(r.out().contains("model.layers.1.self_attn.q_proj.weight"), r.out());
        assertFalse(r.out().contains("parameters"), r.out());
    }

    @Test
    void aCorruptSafetensorsFileExitsTwoWithOneLineAndNoOutput() throws IOException {
        Path bad = Files.write(dir.resolve("model.safetensors"), new byte[] {16, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a'});
        var r = run("inspect", bad.toString());
        assertEquals(2, r.status());
        assertEquals("", r.out());
        assertEquals("moe4j: error: " + bad + ": header length 16 runs past the end of the file (11 bytes)\n",
                r.err().replace("\r\n", "\n"));
    }

    @Test
    void aCorruptShardInAFolderPrintsNothingButItsError() throws IOException {
        Path model = shardedCheckpoint();
        Path shard = model.resolve("model-00002-of-00004.safetensors");
        byte[] bytes = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(bytes, bytes.length - 100));
        var r = run("inspect", model.toString());
        assertEquals(2, r.status());
        assertEquals("", r.out());
        assertTrue(r.err().startsWith("moe4j: error: " + shard + ": "), r.err());
        assertTrue(r.err().contains("run past the end of the data"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void badConfigsAndPathsExitTwo() throws IOException {
        Path config = Files.writeString(dir.resolve("config.json"), "{\"model_type\":\"bert\"}");
        var r = run("inspect", config.toString());
        assertEquals(2, r.status());
        assertTrue(r.err().startsWith("moe4j: error: " + config + ": unsupported model_type 'bert'; supported: "),
                r.err());
        assertEquals(1, r.err().lines().count());

        var missing = run("inspect", dir.resolve("nothing-here").toString());
        assertEquals(2, missing.status());
        assertTrue(missing.err().contains("no such file or folder"), missing.err());

        Path empty = Files.createDirectory(dir.resolve("empty"));
        var emptyFolder = run("inspect", empty.toString());
        assertEquals(2, emptyFolder.status());
        assertTrue(emptyFolder.err().contains("no config.json and no model.safetensors"), emptyFolder.err());

        assertEquals(2, run("inspect").status(), "PATH is required");
    }

    @Test
    void helpListsInspect() {
        var r = run("--help");
        assertEquals(0, r.status());
        assertTrue(r.out().contains("inspect"), r.out());
        assertTrue(run("inspect", "--help").out().contains("--tensors"));
    }

    /**
     * The fixture's sharded checkpoint, rebuilt from its headers with zero-filled tensors: same files, names,
     * dtypes and shapes, plus its config.json and an index.
     */
    private Path shardedCheckpoint() throws IOException {
        Path src = resource("mixtral-bf16-sharded");
        Path model = Files.createDirectories(dir.resolve("mixtral-bf16-sharded"));
        Files.copy(src.resolve("config.json"), model.resolve("config.json"));
        var weightMap = new TreeMap<String, String>();
        try (Stream<Path> headers = Files.list(src)) {
            for (Path header : headers.filter(p -> p.toString().endsWith(".header.json")).sorted().toList()) {
                String file = header.getFileName().toString().replace(".header.json", "");
                var tensors = new LinkedHashMap<String, Tensor>();
                var metadata = new LinkedHashMap<String, String>();
                for (var e : Json.read(header).properties()) {
                    if (e.getKey().equals("__metadata__")) {
                        e.getValue().properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
                        continue;
                    }
                    int[] shape = new int[e.getValue().get("shape").size()];
                    for (int i = 0; i < shape.length; i++) {
                        shape[i] = e.getValue().get("shape").get(i).asInt();
                    }
                    tensors.put(e.getKey(), Tensor.zeros(DType.valueOf(e.getValue().get("dtype").asText()), shape));
                    weightMap.put(e.getKey(), file);
                }
                SafetensorsWriter.write(model.resolve(file), tensors, metadata);
            }
        }
        var index = Json.mapper().createObjectNode();
        var map = index.putObject("weight_map");
        weightMap.forEach(map::put);
        Files.writeString(model.resolve(Checkpoint.INDEX_FILE), Json.pretty(index));
        return model;
    }
}
