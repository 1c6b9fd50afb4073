package dev.moe4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.BadInputException;
import dev.moe4j.core.DType;
import dev.moe4j.core.Parallel;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.quant.E4m3BlockCodec;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.Checkpoint;
import dev.moe4j.model.transformer.ExpertStorage;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Hugging Face checkpoint saved already quantised, as its config.json's {@code quantization_config} declares:
 * <ul>
 *   <li>{@code "mxfp4"} (gpt-oss): each layer's experts as {@code gate_up_proj_blocks} [E, 2I, H/32, 16] and
 *   {@code down_proj_blocks} [E, H, I/32, 16], two E2M1 codes a byte (element 2k in the low nibble of byte k),
 *   with {@code *_scales} [E, rows, cols/32] of E8M0 exponents biased by 127; gate and up rows interleave.</li>
 *   <li>{@code "fp8"} (DeepSeek-V3, Qwen3-FP8): a matrix stored as F8_E4M3 codes [out, in] beside its
 *   {@code weight_scale_inv} [⌈out/b₀⌉, ⌈in/b₁⌉], one F32 or BF16 scale per tile of {@code weight_block_size}.</li>
 * </ul>
 * Each quantised matrix is repacked once, as the model asks for it, into a block type the kernels read in place:
 * MXFP4 in ggml's layout (the same codes and exponents, regrouped), F8_E4M3_B32 (the same codes, each 32 of a row
 * with its tile's scale). Weights stay quantised in memory and compute exactly what the stored values say. An FP8
 * matrix whose rows are not whole 32-element chunks of its tiles (possible in toy shapes, never in the published
 * checkpoints) is decoded to F32 instead. The gpt-oss experts are handed out one expert and one projection at a
 * time ({@link ExpertStorage#SEPARATE}), gate and up rows taken apart.
 */
final class PrequantisedWeights implements StoredWeights {
    private static final Pattern EXPERT = Pattern.compile("layers\\.(\\d+)\\.moe\\.experts\\.(\\d+)\\.(gate|up|down)_proj\\.(weight|bias)");
    private static final String SCALE_SUFFIX = "_scale_inv";

    /** The quantisation methods moe4j reads, by their {@code quant_method}. */
    enum Method { MXFP4, FP8 }

    private final SafetensorsWeights inner;
    private final Checkpoint checkpoint;
    private final Method method;
    private final int[] fp8Block;
    private final Arena arena = Arena.ofShared();

    private PrequantisedWeights(SafetensorsWeights inner, Method method, int[] fp8Block) {
        this.inner = inner;
        this.checkpoint = inner.checkpoint();
        this.method = method;
        this.fp8Block = fp8Block;
    }

    /**
     * The checkpoint of a folder whose config.json declares {@code quantization_config}; a method or an option moe4j
     * does not read is an error naming the field.
     */
    static PrequantisedWeights open(Path configFile, SafetensorsWeights inner) {
        try {
            JsonNode q = Json.read(configFile).path("quantization_config");
            String name = q.path("quant_method").asText("");
            Method method = switch (name) {
                case "mxfp4" -> Method.MXFP4;
                case "fp8" -> Method.FP8;
                default -> throw new BadInputException(configFile + ": quantization_config.quant_method '" + name
                        + "' is not read by moe4j (it reads 'mxfp4' and 'fp8' checkpoints, and GGUF files)");
            };
            int[] block = null;
            if (method == Method.FP8) {
                String fmt = q.path("fmt").asText("e4m3");
                if (!fmt.equals("e4m3")) {
                    throw new BadInputException(configFile + ": quantization_config.fmt '" + fmt + "': moe4j reads "
                            + "e4m3 FP8 weights");
                }
                String activations = q.path("activation_scheme").asText("dynamic");
                if (!activations.equals("dynamic")) {
                    throw new BadInputException(configFile + ": quantization_config.activation_scheme '"
                            + activations + "': moe4j reads FP8 weights with dynamic (or no) activation scales");
                }
                JsonNode b = q.path("weight_block_size");
                if (!b.isArray() || b.size() != 2 || !b.get(0).canConvertToInt() || !b.get(1).canConvertToInt()
                        || b.get(0).asInt() <= 0 || b.get(1).asInt() <= 0) {
                    throw new BadInputException(configFile + ": quantization_config.weight_block_size must be two "
                            + "positive integers (block-scaled FP8, e.g. [128, 128]), got " + b);
                }
                block = new int[] {b.get(0).asInt(), b.get(1).asInt()};
            }
            return new PrequantisedWeights(inner, method, block);
        } catch (RuntimeException e) {
            inner.close();
            throw e;
        }
    }

    @Override
    public String storedName(String name) {
        Matcher m = EXPERT.matcher(name);
        if (method == Method.MXFP4 && m.matches()) {
            return stacked(m.group(1), m.group(3), m.group(4));
        }
        return inner.storedName(name);
    }

    @Override
    public Optional<Stored> find(String name) {
        Matcher m = EXPERT.matcher(name);
        if (method == Method.MXFP4 && m.matches()) {
            return mxfp4Expert(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), m.group(3), m.group(4));
        }
        Optional<Stored> found = inner.find(name);
        if (method == Method.FP8 && found.isPresent() && found.get().tensor().dtype() == DType.F8_E4M3) {
            return Optional.of(fp8(found.get()));
        }
        return found;
    }

    // ---- gpt-oss MXFP4 experts ----

    /** The stored tensor of a layer's stacked projection: blocks for a weight, the (fused) bias for a bias. */
    private static String stacked(String layer, String projection, String kind) {
        String fused = projection.equals("down") ? "down_proj" : "gate_up_proj";
        return "model.layers." + layer + ".mlp.experts." + fused + (kind.equals("weight") ? "_blocks" : "_bias");
    }

    private Optional<Stored> mxfp4Expert(int layer, int expert, String projection, String kind) {
        String name = stacked(Integer.toString(layer), projection, kind);
        if (!checkpoint.contains(name)) {
            return Optional.empty();
        }
        Path file = checkpoint.fileOf(name).path();
        Tensor stored = checkpoint.tensor(name);
        String label = name + "[" + expert + "]";
        // gate and up rows (and bias elements) interleave: gate i at 2i, up i at 2i + 1
        int stride = projection.equals("down") ? 1 : 2, first = projection.equals("up") ? 1 : 0;
        if (kind.equals("bias")) {
            if (stored.rank() != 2 || expert >= stored.dim(0) || stored.dim(1) % stride != 0) {
                throw new BadInputException(file + ": tensor '" + name + "' has shape " + shape(stored)
                        + "; expected [experts, " + (stride == 2 ? "2 x intermediate" : "hidden") + "]");
            }
            Tensor row = stored.select(expert);
            if (stride == 1) {
                return Optional.of(new Stored(name, label, file, row));
            }
            float[] values = new float[row.dim(0) / 2];
            for (int i = 0; i < values.length; i++) {
                values[i] = row.getFloat(2L * i + first);
            }
            return Optional.of(new Stored(name, label, file, Tensor.of(values, values.length)));
        }
        String scalesName = name.replace("_blocks", "_scales");
        if (!checkpoint.contains(scalesName)) {
            throw new BadInputException(file + ": tensor '" + name + "' has no '" + scalesName + "' beside it");
        }
        Tensor scales = checkpoint.tensor(scalesName);
        if (stored.dtype() != DType.U8 || stored.rank() != 4 || stored.dim(3) != 16 || expert >= stored.dim(0)
                || stored.dim(1) % stride != 0) {
            throw new BadInputException(file + ": tensor '" + name + "' is " + stored.dtype() + " " + shape(stored)
                    + "; MXFP4 blocks are U8 [experts, rows, cols / 32, 16]");
        }
        if (scales.dtype() != DType.U8 || !scales.hasShape(stored.dim(0), stored.dim(1), stored.dim(2))) {
            throw new BadInputException(checkpoint.fileOf(scalesName).path() + ": tensor '" + scalesName + "' is "
                    + scales.dtype() + " " + shape(scales) + "; expected U8 [" + stored.dim(0) + ", "
                    + stored.dim(1) + ", " + stored.dim(2) + "] beside its blocks");
        }
        int rows = stored.dim(1) / stride, groups = stored.dim(2);
        long rowBytes = 17L * groups;
        MemorySegment out = arena.allocate(rowBytes * rows);
        MemorySegment codes = stored.select(expert).segment(), exponents = scales.select(expert).segment();
        Parallel.forRange(rows, Math.max(1, 4096 / groups), (from, to) -> {
            for (int r = from; r < to; r++) {
                long source = (long) (stride * r + first) * groups;
                for (int g = 0; g < groups; g++) {
                    long in = (source + g) * 16, at = r * rowBytes + 17L * g;
                    out.set(ValueLayout.JAVA_BYTE, at, exponents.get(ValueLayout.JAVA_BYTE, source + g));
                    // ggml keeps element j in the low nibble of byte j and element j + 16 in its high nibble
                    for (int j = 0; j < 16; j++) {
                        int shift = 4 * (j & 1);
                        int low = codes.get(ValueLayout.JAVA_BYTE, in + (j >> 1)) >> shift & 0xF;
                        int high = codes.get(ValueLayout.JAVA_BYTE, in + 8 + (j >> 1)) >> shift & 0xF;
                        out.set(ValueLayout.JAVA_BYTE, at + 1 + j, (byte) (low | high << 4));
                    }
                }
            }
        });
        return Optional.of(new Stored(name, label, file, Tensor.wrap(DType.MXFP4, out, rows, 32 * groups)));
    }

    // ---- block-scaled FP8 ----

    private Stored fp8(Stored w) {
        Tensor codes = w.tensor();
        String scaleName = w.name() + SCALE_SUFFIX;
        if (!checkpoint.contains(scaleName)) {
            throw new BadInputException(w.file() + ": F8_E4M3 tensor '" + w.name() + "' has no '" + scaleName
                    + "' beside it (block-scaled FP8 keeps one scale per " + fp8Block[0] + "x" + fp8Block[1] + " tile)");
        }
        Tensor scales = checkpoint.tensor(scaleName);
        if (codes.rank() != 2) {
            throw new BadInputException(w.file() + ": F8_E4M3 tensor '" + w.name() + "' has shape " + shape(codes)
                    + "; moe4j reads block-scaled FP8 matrices");
        }
        int rows = codes.dim(0), cols = codes.dim(1), tileRows = fp8Block[0], tileCols = fp8Block[1];
        int scaleRows = Math.ceilDiv(rows, tileRows), scaleCols = Math.ceilDiv(cols, tileCols);
        if (!scales.hasShape(scaleRows, scaleCols) || !scales.dtype().isKernelFloat()) {
            throw new BadInputException(checkpoint.fileOf(scaleName).path() + ": tensor '" + scaleName + "' is "
                    + scales.dtype() + " " + shape(scales) + "; expected F32, BF16 or F16 [" + scaleRows + ", "
                    + scaleCols + "] for " + shape(codes) + " in tiles of " + tileRows + "x" + tileCols);
        }
        MemorySegment in = codes.segment();
        boolean blocks = cols % 32 == 0 && tileCols % 32 == 0;
        DType type = blocks ? DType.F8_E4M3_B32 : DType.F32;
        long rowBytes = type.byteCount(cols);
        MemorySegment out = arena.allocate(rowBytes * rows);
        Parallel.forRange(rows, Math.max(1, (1 << 16) / cols), (from, to) -> {
            for (int r = from; r < to; r++) {
                for (int tile = 0; tile < scaleCols; tile++) {
                    float scale = scales.getFloat((long) (r / tileRows) * scaleCols + tile);
                    for (int c = tile * tileCols; c < Math.min(cols, (tile + 1) * tileCols); c++) {
                        int code = in.get(ValueLayout.JAVA_BYTE, (long) r * cols + c) & 0xFF;
                        if (E4m3BlockCodec.isNaN(code)) {
                            throw new BadInputException(w.file() + ": tensor '" + w.name() + "' holds a NaN at ["
                                    + r + ", " + c + "]");
                        }
                        if (!blocks) {
                            out.setAtIndex(ValueLayout.JAVA_FLOAT, (long) r * cols + c, E4m3BlockCodec.value(code) * scale);
                            continue;
                        }
                        long block = r * rowBytes + 36L * (c / 32);
                        if (c % 32 == 0) {
                            out.set(ValueLayout.JAVA_FLOAT_UNALIGNED, block, scale);
                        }
                        out.set(ValueLayout.JAVA_BYTE, block + 4 + c % 32, (byte) code);
                    }
                }
            }
        });
        return new Stored(w.name(), w.label(), w.file(), Tensor.wrap(type, out, rows, cols));
    }

    private static String shape(Tensor t) {
        return java.util.Arrays.toString(t.shape());
    }

    @Override
    public Path location() {
        return inner.location();
    }

    @Override
    public String describedBy() {
        return inner.describedBy();
    }

    @Override
    public ExpertStorage expertStorage() {
        return method == Method.MXFP4 ? ExpertStorage.SEPARATE : inner.expertStorage();
    }

    @Override
    public long byteSize() {
        return inner.byteSize();
    }

    /** A tensor's scales are used when the tensor is. */
    @Override
    public List<Leftover> leftOver(Set<String> used) {
        Set<String> all = new HashSet<>(used);
        for (String name : used) {
            all.add(method == Method.MXFP4 ? name.replace("_blocks", "_scales") : name + SCALE_SUFFIX);
        }
        return inner.leftOver(all);
    }

    @Override
    public void close() {
        try {
            inner.close();
        } finally {
            arena.close();
        }
    }
}
