package dev.moe4j.model.gguf;

import dev.moe4j.core.BadInputException;
import dev.moe4j.io.gguf.GgmlType;
import dev.moe4j.io.gguf.GgufMetadata;
import dev.moe4j.io.gguf.GgufReader;
import dev.moe4j.io.gguf.GgufTensor;
import dev.moe4j.io.gguf.GgufTensorInfo;
import dev.moe4j.io.gguf.GgufValue;
import dev.moe4j.io.gguf.GgufWriter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Map;

/**
 * {@code moe4j quantize}: a GGUF file written again with its matrices in another {@link GgufFileType}, as
 * llama.cpp's {@code llama-quantize} does (without an importance matrix). Each matrix is decoded from whatever type
 * it is stored in and encoded into the type the file type's rules give it, streamed from the mapped input; what
 * llama.cpp does not quantise (norms, routers, 1D tensors) is copied as it is. The metadata is kept, with
 * {@code general.file_type} and {@code general.quantization_version} set.
 */
public final class GgufQuantizer {
    /** The key that records the version of ggml's block layouts (llama.cpp's GGML_QNT_VERSION). */
    static final String QUANTIZATION_VERSION = "general.quantization_version";
    static final int GGML_QUANTIZATION_VERSION = 2;
    private static final String FILE_TYPE = "general.file_type";

    private GgufQuantizer() {
    }

    /** What was written: tensors, bytes of tensor data, and how many tensors took each type. */
    public record Result(Path file, int tensors, long bytes, Map<GgmlType, Integer> types) {
    }

    public static Result quantize(Path in, Path out, GgufFileType fileType) {
        if (Files.isDirectory(out)) {
            throw new BadInputException(out + ": is a folder; give the path of the .gguf file to write");
        }
        try (GgufReader reader = GgufReader.open(in)) {
            GgufFileType.Model model = model(reader);
            var tensors = new ArrayList<GgufTensor>();
            var types = new java.util.TreeMap<GgmlType, Integer>();
            for (GgufTensorInfo info : reader.tensors()) {
                GgmlType type;
                try {
                    type = GgufFileType.quantizable(info.name(), info.shape())
                            ? fileType.typeOf(info.name(), info.shape(), model) : info.type();
                } catch (BadInputException e) {
                    throw new BadInputException(in + ": " + e.getMessage());
                }
                tensors.add(GgufTensor.of(info.name(), type, reader.tensor(info.name())));
                types.merge(type, 1, Integer::sum);
            }
            GgufWriter.write(out, metadata(reader.metadata(), fileType), tensors);
            long bytes = tensors.stream().mapToLong(GgufTensor::byteSize).sum();
            return new Result(out, tensors.size(), bytes, types);
        }
    }

    /** Layers and experts from the architecture's keys; tied embeddings when there is no output.weight. */
    private static GgufFileType.Model model(GgufReader reader) {
        String arch = string(reader, "general.architecture");
        int layers = (int) integer(reader, arch + ".block_count");
        int experts = reader.metadata().get(arch + ".expert_count").isPresent()
                ? (int) integer(reader, arch + ".expert_count") : 0;
        return new GgufFileType.Model(layers, experts, reader.info("output.weight").isEmpty());
    }

    private static String string(GgufReader reader, String key) {
        GgufValue v = reader.metadata().get(key).orElseThrow(() -> new BadInputException(reader.path()
                + ": metadata '" + key + "' is missing"));
        if (v.type() != dev.moe4j.io.gguf.GgufValueType.STRING) {
            throw new BadInputException(reader.path() + ": metadata '" + key + "' is a " + v.type()
                    + "; expected a string");
        }
        return v.stringValue();
    }

    private static long integer(GgufReader reader, String key) {
        GgufValue v = reader.metadata().get(key).orElseThrow(() -> new BadInputException(reader.path()
                + ": metadata '" + key + "' is missing"));
        if (!v.type().isInteger() || v.longValue() < 0 || v.longValue() > Integer.MAX_VALUE) {
            throw new BadInputException(reader.path() + ": metadata '" + key + "' is " + v.value()
                    + "; expected a non-negative integer");
        }
        return v.longValue();
    }

    /** The input's metadata in its order, the file type and quantisation version replaced or added. */
    private static GgufMetadata metadata(GgufMetadata source, GgufFileType fileType) {
        var m = GgufMetadata.builder();
        for (var e : source.entries().entrySet()) {
            switch (e.getKey()) {
                case FILE_TYPE -> m.put(FILE_TYPE, GgufValue.uint32(fileType.id()));
                case QUANTIZATION_VERSION -> m.put(QUANTIZATION_VERSION, GgufValue.uint32(GGML_QUANTIZATION_VERSION));
                default -> m.put(e.getKey(), e.getValue());
            }
        }
        if (!m.contains(FILE_TYPE)) {
            m.put(FILE_TYPE, GgufValue.uint32(fileType.id()));
        }
        if (!m.contains(QUANTIZATION_VERSION)) {
            m.put(QUANTIZATION_VERSION, GgufValue.uint32(GGML_QUANTIZATION_VERSION));
        }
        return m.build();
    }
}
