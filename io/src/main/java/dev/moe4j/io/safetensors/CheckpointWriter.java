package dev.moe4j.io.safetensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.AtomicFiles;
import dev.moe4j.io.json.Json;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes a model's tensors into a folder the way Hugging Face's {@code save_pretrained} does: one
 * {@code model.safetensors} when they fit in one shard, otherwise {@code model-0000i-of-0000n.safetensors} shards
 * plus {@code model.safetensors.index.json}. Every file is first written under a temporary name; the files are
 * moved into place only after all of them were written, the index last, so a failure leaves no partial shard.
 */
public final class CheckpointWriter {
    private CheckpointWriter() {
    }

    /**
     * Writes the tensors into {@code folder}, starting a new shard whenever the next tensor would take the current
     * one past {@code maxShardBytes} (a tensor larger than that gets a shard of its own).
     *
     * @return the files written, the index last when there is one
     */
    public static List<Path> write(Path folder, Map<String, Tensor> tensors, long maxShardBytes,
                                   Map<String, String> metadata) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("maxShardBytes must be positive, got " + maxShardBytes);
        }
        List<Map<String, Tensor>> shards = split(new TreeMap<>(tensors), maxShardBytes);
        if (shards.size() == 1) {
            Path file = folder.resolve(Checkpoint.SINGLE_FILE);
            SafetensorsWriter.write(file, shards.getFirst(), metadata);
            return List.of(file);
        }
        var targets = new ArrayList<Path>();
        var temps = new ArrayList<Path>();
        var weightMap = new TreeMap<String, String>();
        long totalBytes = 0;
        long totalParameters = 0;
        try {
            for (int i = 0; i < shards.size(); i++) {
                String name = String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
                Path target = folder.resolve(name);
                temps.add(SafetensorsWriter.writeTemporary(target, shards.get(i), metadata));
                targets.add(target);
                for (var e : shards.get(i).entrySet()) {
                    weightMap.put(e.getKey(), name);
                    totalBytes += e.getValue().byteSize();
                    totalParameters += e.getValue().size();
                }
            }
            Path index = folder.resolve(Checkpoint.INDEX_FILE);
            temps.add(writeIndexTemporary(index, totalParameters, totalBytes, weightMap));
            targets.add(index);
        } catch (RuntimeException e) {
            temps.forEach(AtomicFiles::deleteQuietly);
            throw e;
        }
        for (int i = 0; i < targets.size(); i++) {
            AtomicFiles.commit(temps.get(i), targets.get(i));
        }
        return targets;
    }

    private static List<Map<String, Tensor>> split(Map<String, Tensor> sorted, long maxShardBytes) {
        var shards = new ArrayList<Map<String, Tensor>>();
        var current = new LinkedHashMap<String, Tensor>();
        long bytes = 0;
        for (var e : sorted.entrySet()) {
            long size = e.getValue().byteSize();
            if (!current.isEmpty() && bytes + size > maxShardBytes) {
                shards.add(current);
                current = new LinkedHashMap<>();
                bytes = 0;
            }
            current.put(e.getKey(), e.getValue());
            bytes += size;
        }
        shards.add(current);
        return shards;
    }

    /** The index as {@code save_pretrained} writes it: sorted keys, two-space indent, a final newline. */
    private static Path writeIndexTemporary(Path index, long totalParameters, long totalBytes,
                                            Map<String, String> weightMap) {
        ObjectNode root = Json.mapper().createObjectNode();
        ObjectNode meta = root.putObject("metadata");
        meta.put("total_parameters", totalParameters);
        meta.put("total_size", totalBytes);
        ObjectNode map = root.putObject("weight_map");
        weightMap.forEach(map::put);
        return AtomicFiles.writeTemporary(index, Json.pretty(root) + "\n");
    }
}
