package dev.moe4j.io.safetensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.DType;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Writes sample files with moe4j's writer to target/safetensors-compat, with the SHA-256 of every tensor's bytes,
 * for scripts/check_safetensors_compat.py to read with the Python safetensors library (which this machine lacks).
 */
class PythonCompatibilitySamplesTest {
    /** Dtypes that safetensors releases added after 0.4 (F4/F6 and E8M0 in 0.6, FNUZ and C64 later). */
    private static final Set<DType> NEWER = Set.of(DType.F4, DType.F6_E2M3, DType.F6_E3M2, DType.F8_E8M0,
            DType.F8_E4M3FNUZ, DType.F8_E5M2FNUZ, DType.C64);

    @Test
    void samplesForThePythonLibraryReadBackWithTheirRecordedHashes() throws IOException {
        Path out = Files.createDirectories(Path.of("target", "safetensors-compat"));
        var random = new Random(42);
        var common = new LinkedHashMap<String, Tensor>();
        var newer = new LinkedHashMap<String, Tensor>();
        for (DType dtype : DType.values()) {
            if (dtype.isBlockQuantized()) {
                continue; // GGUF's types, which safetensors has no name for
            }
            Tensor t = Tensor.zeros(dtype, 3, 4);
            byte[] bytes = new byte[(int) t.byteSize()];
            random.nextBytes(bytes);
            MemorySegment.copy(MemorySegment.ofArray(bytes), 0, t.segment(), 0, bytes.length);
            (NEWER.contains(dtype) ? newer : common).put("t_" + dtype.name().toLowerCase(), t);
        }
        common.put("scalar", Tensor.of(new float[] {2.5f}));
        common.put("empty", Tensor.zeros(DType.F32, 0, 7));
        common.put("zz.last\u00e9", Tensor.zeros(DType.I64, 2));

        ObjectNode manifest = Json.mapper().createObjectNode();
        write(out.resolve("common.safetensors"), common, Map.of("format", "pt"), manifest);
        write(out.resolve("newer_dtypes.safetensors"), newer, Map.of(), manifest);

        var sharded = new LinkedHashMap<String, Tensor>();
        for (int i = 0; i < 4; i++) {
            sharded.put("layer." + i, Tensor.zeros(DType.BF16, 16, 16));
        }
        List<Path> files = CheckpointWriter.write(out.resolve("sharded"), sharded, 1024, Map.of("format", "pt"));
        manifest.putObject("sharded").put("files", files.size());
        Files.writeString(out.resolve("manifest.json"), Json.pretty(manifest) + "\n");

        // What the Python script will check, checked here first with moe4j's own reader.
        for (String file : List.of("common.safetensors", "newer_dtypes.safetensors")) {
            try (var reader = SafetensorsReader.open(out.resolve(file))) {
                var expected = manifest.get(file).get("tensors");
                assertEquals(expected.size(), reader.names().size());
                for (String name : reader.names()) {
                    assertEquals(expected.get(name).get("sha256").asText(), sha256(reader.tensor(name)), name);
                }
            }
        }
        try (var checkpoint = Checkpoint.open(out.resolve("sharded"))) {
            assertEquals(sharded.keySet(), new java.util.TreeSet<>(checkpoint.names()));
        }
    }

    private static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata,
                              ObjectNode manifest) {
        SafetensorsWriter.write(file, tensors, metadata);
        ObjectNode entry = manifest.putObject(file.getFileName().toString());
        metadata.forEach(entry.putObject("metadata")::put);
        ObjectNode sums = entry.putObject("tensors");
        tensors.forEach((name, t) -> {
            ObjectNode o = sums.putObject(name);
            o.put("dtype", t.dtype().name());
            for (int d : t.shape()) {
                o.withArray("shape").add(d);
            }
            o.put("sha256", sha256(t));
        });
    }

    private static String sha256(Tensor t) {
        try {
            var digest = MessageDigest.getInstance("SHA-256");
            digest.update(t.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            return HexFormat.of().formatHex(digest.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
