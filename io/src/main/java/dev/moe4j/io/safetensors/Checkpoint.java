package dev.moe4j.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.Tensor;
import dev.moe4j.io.json.Json;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * The weights of a model as Hugging Face lays them out: either one {@code model.safetensors} or several shards
 * listed by {@code model.safetensors.index.json} (whose {@code weight_map} names the shard of every tensor).
 * Every file is opened, validated and mapped when the checkpoint is opened, so a broken shard is reported before
 * any tensor is read; tensors are then looked up by name across shards. Closing the checkpoint unmaps every file.
 */
public final class Checkpoint implements AutoCloseable {
    /** The file name of a single-file checkpoint. */
    public static final String SINGLE_FILE = "model.safetensors";
    /** The file name of the index of a sharded checkpoint. */
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private final Path location;
    private final Optional<Path> index;
    private final List<SafetensorsReader> files;
    private final Map<String, SafetensorsReader> fileOf;
    private final Arena arena;

    private Checkpoint(Path location, Optional<Path> index, List<SafetensorsReader> files,
                       Map<String, SafetensorsReader> fileOf, Arena arena) {
        this.location = location;
        this.index = index;
        this.files = List.copyOf(files);
        this.fileOf = Collections.unmodifiableMap(fileOf);
        this.arena = arena;
    }

    /**
     * Opens a checkpoint from a model folder (with an index or a single {@code model.safetensors}), an index file,
     * or one {@code .safetensors} file.
     */
    public static Checkpoint open(Path path) {
        if (Files.isDirectory(path)) {
            Path indexFile = path.resolve(INDEX_FILE);
            if (Files.isRegularFile(indexFile)) {
                return openIndexed(indexFile);
            }
            Path single = path.resolve(SINGLE_FILE);
            if (Files.isRegularFile(single)) {
                return openSingle(single);
            }
            throw new BadInputException(path + ": no " + SINGLE_FILE + " or " + INDEX_FILE + " in this folder");
        }
        if (!Files.exists(path)) {
            throw new BadInputException(path + ": no such file or folder");
        }
        String name = path.getFileName().toString();
        if (name.endsWith(".index.json")) {
            return openIndexed(path);
        }
        if (name.endsWith(".safetensors")) {
            return openSingle(path);
        }
        throw new BadInputException(path + ": not a checkpoint; expected a folder, a .safetensors file or "
                + INDEX_FILE);
    }

    /** Whether a folder holds checkpoint files that {@link #open} would read. */
    public static boolean isCheckpointFolder(Path folder) {
        return Files.isRegularFile(folder.resolve(INDEX_FILE)) || Files.isRegularFile(folder.resolve(SINGLE_FILE));
    }

    private static Checkpoint openSingle(Path file) {
        Arena arena = Arena.ofShared();
        try {
            SafetensorsReader reader = SafetensorsReader.open(file, arena);
            var fileOf = new LinkedHashMap<String, SafetensorsReader>();
            for (TensorEntry e : reader.entries()) {
                fileOf.put(e.name(), reader);
            }
            return new Checkpoint(file, Optional.empty(), List.of(reader), fileOf, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Checkpoint openIndexed(Path indexFile) {
        Map<String, String> weightMap = readWeightMap(indexFile);
        Path folder = indexFile.toAbsolutePath().getParent();
        Arena arena = Arena.ofShared();
        try {
            var shards = new LinkedHashMap<String, SafetensorsReader>();
            for (String shard : new java.util.TreeSet<>(weightMap.values())) {
                Path shardPath = indexFile.resolveSibling(shard);
                if (!Files.isRegularFile(shardPath)) {
                    throw new BadInputException(indexFile + ": shard " + BadInputException.quote(shard) + " named in the index is missing"
                            + " from " + folder);
                }
                shards.put(shard, SafetensorsReader.open(shardPath, arena));
            }
            var fileOf = new TreeMap<String, SafetensorsReader>();
            for (var e : weightMap.entrySet()) {
                SafetensorsReader reader = shards.get(e.getValue());
                if (reader.entry(e.getKey()).isEmpty()) {
                    throw new BadInputException(indexFile + ": tensor " + BadInputException.quote(e.getKey()) + " is mapped to "
                            + BadInputException.quote(e.getValue()) + ", which does not hold it");
                }
                fileOf.put(e.getKey(), reader);
            }
            return new Checkpoint(indexFile, Optional.of(indexFile), new ArrayList<>(shards.values()), fileOf,
                    arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** One name in a folder: no separator, not . or .., nothing the file system cannot name (a NUL). */
    private static boolean isFileName(String name) {
        try {
            Path p = Path.of(name);
            return !p.isAbsolute() && p.getNameCount() == 1 && !name.equals("..") && !name.equals(".");
        } catch (InvalidPathException e) {
            return false;
        }
    }

    private static Map<String, String> readWeightMap(Path indexFile) {
        JsonNode root = Json.read(indexFile);
        JsonNode map = root.get("weight_map");
        if (!root.isObject() || map == null || !map.isObject()) {
            throw new BadInputException(indexFile + ": expected an object with a 'weight_map' of tensor name to"
                    + " shard file");
        }
        var weightMap = new LinkedHashMap<String, String>();
        for (var field : map.properties()) {
            JsonNode shard = field.getValue();
            if (!shard.isTextual()) {
                throw new BadInputException(indexFile + ": weight_map entry " + BadInputException.quote(field.getKey())
                        + " must name a shard file, got a " + shard.getNodeType().name().toLowerCase(Locale.ROOT));
            }
            String file = shard.asText();
            // A shard lives beside its index; a path elsewhere would let an index reach any file on the machine.
            if (file.isEmpty() || !isFileName(file)) {
                throw new BadInputException(indexFile + ": weight_map entry " + BadInputException.quote(field.getKey())
                        + " names " + BadInputException.quote(file) + "; a shard must be a file name in the index's "
                        + "folder");
            }
            weightMap.put(field.getKey(), file);
        }
        return weightMap;
    }

    /** What was opened: the index file or the single safetensors file. */
    public Path location() {
        return location;
    }

    /** The index file, for a sharded checkpoint. */
    public Optional<Path> index() {
        return index;
    }

    /** The safetensors files, in shard order. */
    public List<SafetensorsReader> files() {
        return files;
    }

    /** Every tensor name (sorted for a sharded checkpoint, in data order for a single file). */
    public Set<String> names() {
        return fileOf.keySet();
    }

    public boolean contains(String name) {
        return fileOf.containsKey(name);
    }

    /** The header entry of a tensor. */
    public TensorEntry entry(String name) {
        return fileOf(name).entry(name).orElseThrow();
    }

    /** The file that holds a tensor. */
    public SafetensorsReader fileOf(String name) {
        SafetensorsReader reader = fileOf.get(name);
        if (reader == null) {
            throw new BadInputException(location + ": no tensor named " + BadInputException.quote(name));
        }
        return reader;
    }

    /** The bytes of every tensor's data together. */
    public long byteSize() {
        return fileOf.keySet().stream().mapToLong(name -> entry(name).byteLength()).sum();
    }

    /** A view of the named tensor on its mapped file. */
    public Tensor tensor(String name) {
        return fileOf(name).tensor(name);
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
