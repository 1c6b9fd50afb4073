import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Writes llama.cpp's logits for GGUF files, the reference of model's {@code LlamaCppLogitsTest}: each file is loaded
 * by libllama through FFM (one thread, F32 KV cache, flash attention off), a fixed prompt of token ids is decoded in
 * one batch with the logits of every position, then {@code N} tokens are chosen greedily (argmax, lowest id on a tie)
 * and decoded one at a time, each with its logits. For a block-quantised file the same is done on the file
 * llama.cpp's {@code llama_model_quantize} writes from it in F32 (ggml's dequantisation of every block), which
 * separates what llama.cpp's quantised activations change from what the stored weights are; that file is fed the
 * greedy tokens of the quantised one, so both hold the logits of one token sequence.
 *
 * <p>For each {@code NAME.gguf}: {@code NAME.llama.f32} (rows = prompt + N positions, each the vocabulary's logits,
 * float32 little-endian) and, for a quantised file, {@code NAME.decoded.f32}; {@code llama-cpp.json} lists the files,
 * their sha256, the greedy tokens, the library and the settings.
 *
 * <p>Run it as a single-file program (Java 25, no moe4j classes needed): {@code java --enable-native-access=ALL-UNNAMED
 * scripts/LlamaCppLogits.java BINS_DIR OUT_DIR PROMPT N FILE.gguf...}, BINS_DIR holding libllama and the libggml
 * libraries (bins/linux-x64/ of the npm package {@code @node-llama-cpp/linux-x64} 3.22.1), PROMPT comma-separated ids.
 *
 * <p>The parameter structs are passed by value and their layout changes between llama.cpp releases, so the offsets
 * below are those of this library's {@code llama_*_default_params} (read from its machine code; they match
 * llama.h once {@code n_outputs_max_per_seq} and {@code load_mode}/{@code lazy_mode} were added) and every default
 * the program relies on is checked before a field is written: a library of another layout stops it.
 */
public class LlamaCppLogits {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    private static final java.lang.foreign.AddressLayout ADDRESS = ValueLayout.ADDRESS;
    private static final int GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, LLAMA_FTYPE_ALL_F32 = 0;

    /** Structs of eight-byte words: larger than 16 bytes, they travel in memory, so only their size matters. */
    private static StructLayout words(int bytes) {
        return MemoryLayout.structLayout(MemoryLayout.sequenceLayout(bytes / 8, ValueLayout.JAVA_LONG));
    }

    private static final StructLayout MODEL_PARAMS = words(80), CONTEXT_PARAMS = words(160),
            QUANTIZE_PARAMS = words(64);
    /** llama_batch: n_tokens, then token, embd, pos, n_seq_id, seq_id, logits pointers. */
    private static final StructLayout BATCH = words(56);

    private final SymbolLookup llama;
    private final Arena arena;

    private LlamaCppLogits(SymbolLookup llama, Arena arena) {
        this.llama = llama;
        this.arena = arena;
    }

    private MethodHandle function(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(llama.find(name).orElseThrow(() -> new IllegalStateException("no " + name)),
                descriptor);
    }

    public static void main(String[] args) throws Throwable {
        if (args.length < 5) {
            System.err.println("usage: LlamaCppLogits BINS_DIR OUT_DIR PROMPT N FILE.gguf...");
            System.exit(2);
        }
        Path bins = Path.of(args[0]).toAbsolutePath();
        Path out = Path.of(args[1]);
        int[] prompt = Arrays.stream(args[2].split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
        int greedy = Integer.parseInt(args[3]);
        Files.createDirectories(out);
        try (Arena arena = Arena.ofConfined()) {
            Path libllama = bins.resolve("libllama.v0.5.0.so");
            SymbolLookup ggml = SymbolLookup.libraryLookup(bins.resolve("libggml.v0.5.0.so"), arena);
            // a build with dynamically loaded backends: the CPU backend (the variant for this CPU) comes from a file
            LINKER.downcallHandle(ggml.find("ggml_backend_load_all_from_path").orElseThrow(),
                    FunctionDescriptor.ofVoid(ADDRESS)).invokeExact(arena.allocateFrom(bins.toString()));
            var run = new LlamaCppLogits(SymbolLookup.libraryLookup(libllama, arena), arena);
            run.function("llama_backend_init", FunctionDescriptor.ofVoid()).invokeExact();
            String version = ((MemorySegment) run.function("llama_version", FunctionDescriptor.of(ADDRESS))
                    .invokeExact()).reinterpret(64).getString(0);

            List<String> fixtures = new ArrayList<>();
            for (int i = 4; i < args.length; i++) {
                Path file = Path.of(args[i]);
                String stem = file.getFileName().toString().replaceFirst("\\.gguf$", "");
                Result quantised = run.logits(file, prompt, greedy, null);
                write(out.resolve(stem + ".llama.f32"), quantised.logits());
                String entry = "    {\"gguf\": \"" + file.getFileName() + "\", \"sha256\": \"" + sha256(file)
                        + "\", \"ftype\": " + quantised.ftype() + ", \"vocab\": " + quantised.vocab()
                        + ", \"logits\": \"" + stem + ".llama.f32\", \"greedy\": " + json(quantised.greedy());
                if (quantised.ftype() != LLAMA_FTYPE_ALL_F32) {
                    Path decodedFile = Files.createTempFile(stem, "-f32.gguf");
                    try {
                        run.dequantize(file, decodedFile);
                        Result decoded = run.logits(decodedFile, prompt, greedy, quantised.greedy());
                        write(out.resolve(stem + ".decoded.f32"), decoded.logits());
                        entry += ", \"decoded\": {\"sha256\": \"" + sha256(decodedFile) + "\", \"logits\": \"" + stem
                                + ".decoded.f32\"}";
                    } finally {
                        Files.deleteIfExists(decodedFile);
                    }
                }
                fixtures.add(entry + "}");
                System.err.println("LlamaCppLogits: " + stem + " greedy " + json(quantised.greedy()));
            }
            String cpu = Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .filter(l -> l.contains("libggml-cpu")).map(l -> l.substring(l.indexOf('/')))
                    .distinct().collect(Collectors.joining(", "));
            String json = "{\n  \"made_by\": \"scripts/LlamaCppLogits.java\",\n"
                    + "  \"llama_version\": \"" + version + "\",\n"
                    + "  \"libllama_sha256\": \"" + sha256(libllama) + "\",\n"
                    + "  \"cpu_backend\": \"" + Path.of(cpu).getFileName() + "\",\n"
                    + "  \"cpu_backend_sha256\": \"" + sha256(Path.of(cpu)) + "\",\n"
                    + "  \"settings\": \"n_threads 1, F32 KV cache, flash attention off, other parameters at"
                    + " llama.cpp's defaults; the prompt decoded in one batch, then each greedy token alone\",\n"
                    + "  \"prompt\": " + json(prompt) + ",\n"
                    + "  \"rows\": " + (prompt.length + greedy) + ",\n"
                    + "  \"fixtures\": [\n" + String.join(",\n", fixtures) + "\n  ]\n}\n";
            Files.writeString(out.resolve("llama-cpp.json"), json);
        }
    }

    record Result(int ftype, int vocab, float[] logits, int[] greedy) {
    }

    /**
     * The logits of every position of the prompt and of {@code n} tokens after it: the greedy ones, or {@code fed}
     * where given (the same sequence for two files, whatever their own greedy choices).
     */
    private Result logits(Path file, int[] prompt, int n, int[] fed) throws Throwable {
        MemorySegment modelParams = (MemorySegment) function("llama_model_default_params",
                FunctionDescriptor.of(MODEL_PARAMS)).invokeExact((java.lang.foreign.SegmentAllocator) arena);
        expect(modelParams, 0x10, -1, "llama_model_params.n_gpu_layers");
        modelParams.set(INT, 0x10, 0);
        MemorySegment model = (MemorySegment) function("llama_model_load_from_file",
                FunctionDescriptor.of(ADDRESS, ADDRESS, MODEL_PARAMS))
                .invokeExact(arena.allocateFrom(file.toString()), modelParams);
        if (model.equals(MemorySegment.NULL)) {
            throw new IllegalStateException(file + ": llama.cpp did not load it");
        }
        int ftype = (int) function("llama_model_ftype", FunctionDescriptor.of(INT, ADDRESS)).invokeExact(model);
        MemorySegment vocabulary = (MemorySegment) function("llama_model_get_vocab",
                FunctionDescriptor.of(ADDRESS, ADDRESS)).invokeExact(model);
        int vocab = (int) function("llama_vocab_n_tokens", FunctionDescriptor.of(INT, ADDRESS)).invokeExact(vocabulary);

        int rows = prompt.length + n;
        MemorySegment contextParams = (MemorySegment) function("llama_context_default_params",
                FunctionDescriptor.of(CONTEXT_PARAMS)).invokeExact((java.lang.foreign.SegmentAllocator) arena);
        // n_ctx, n_batch, n_ubatch, n_seq_max, n_rs_seq, n_outputs_max, n_outputs_max_per_seq, n_threads,
        // n_threads_batch, ..., flash_attn_type at 0x34, ..., type_k and type_v at 0x68
        int[][] fields = {{0x00, 512, rows}, {0x04, 2048, rows}, {0x08, 512, rows}, {0x0c, 1, 1}, {0x14, 0, rows},
                {0x18, 1, rows}, {0x1c, 4, 1}, {0x20, 4, 1}, {0x34, -1, 0}, {0x68, GGML_TYPE_F16, GGML_TYPE_F32},
                {0x6c, GGML_TYPE_F16, GGML_TYPE_F32}};
        for (int[] f : fields) {
            expect(contextParams, f[0], f[1], "llama_context_params field at " + f[0]);
        }
        for (int[] f : fields) {
            contextParams.set(INT, f[0], f[2]);
        }
        MemorySegment context = (MemorySegment) function("llama_init_from_model",
                FunctionDescriptor.of(ADDRESS, ADDRESS, CONTEXT_PARAMS)).invokeExact(model, contextParams);
        if (context.equals(MemorySegment.NULL)) {
            throw new IllegalStateException(file + ": llama.cpp made no context");
        }
        MethodHandle decode = function("llama_decode", FunctionDescriptor.of(INT, ADDRESS, BATCH));
        MethodHandle logitsOf = function("llama_get_logits_ith", FunctionDescriptor.of(ADDRESS, ADDRESS, INT));

        float[] all = new float[rows * vocab];
        int[] greedy = new int[n];
        int status = (int) decode.invokeExact(context, batch(prompt, 0));
        check(status, file, 0);
        for (int i = 0; i < prompt.length; i++) {
            copyRow((MemorySegment) logitsOf.invokeExact(context, i), vocab, all, i);
        }
        for (int t = 0; t < n; t++) {
            greedy[t] = argmax(all, prompt.length - 1 + t, vocab);
            int next = fed == null ? greedy[t] : fed[t];
            status = (int) decode.invokeExact(context, batch(new int[] {next}, prompt.length + t));
            check(status, file, prompt.length + t);
            copyRow((MemorySegment) logitsOf.invokeExact(context, 0), vocab, all, prompt.length + t);
        }
        function("llama_free", FunctionDescriptor.ofVoid(ADDRESS)).invokeExact(context);
        function("llama_model_free", FunctionDescriptor.ofVoid(ADDRESS)).invokeExact(model);
        return new Result(ftype, vocab, all, greedy);
    }

    /** {@code in}'s every tensor in F32, each block dequantised by ggml, written by llama.cpp's quantiser. */
    private void dequantize(Path in, Path out) throws Throwable {
        MemorySegment params = (MemorySegment) function("llama_model_quantize_default_params",
                FunctionDescriptor.of(QUANTIZE_PARAMS)).invokeExact((java.lang.foreign.SegmentAllocator) arena);
        expect(params, 0x04, 7, "llama_model_quantize_params.ftype");
        expect(params, 0x08, 43, "llama_model_quantize_params.output_tensor_type"); // GGML_TYPE_COUNT
        if (params.get(BYTE, 0x10) != 0 || params.get(BYTE, 0x11) != 1) {
            throw new IllegalStateException("llama_model_quantize_params: not the layout this program knows");
        }
        params.set(INT, 0x00, 1); // nthread
        params.set(INT, 0x04, LLAMA_FTYPE_ALL_F32);
        params.set(BYTE, 0x10, (byte) 1); // allow_requantize: dequantise blocks rather than refuse them
        int status = (int) function("llama_model_quantize", FunctionDescriptor.of(INT, ADDRESS, ADDRESS, ADDRESS))
                .invokeExact(arena.allocateFrom(in.toString()), arena.allocateFrom(out.toString()), params);
        if (status != 0) {
            throw new IllegalStateException(in + ": llama_model_quantize to F32 returned " + status);
        }
    }

    /** A batch of {@code tokens} of sequence 0 at positions from {@code start}, every one with its logits. */
    private MemorySegment batch(int[] tokens, int start) {
        int n = tokens.length;
        MemorySegment batch = arena.allocate(BATCH);
        MemorySegment pos = arena.allocate(INT, n), seqCount = arena.allocate(INT, n),
                seqIds = arena.allocate(ADDRESS, n), outputs = arena.allocate(BYTE, n);
        MemorySegment sequence = arena.allocateFrom(INT, 0);
        for (int i = 0; i < n; i++) {
            pos.setAtIndex(INT, i, start + i);
            seqCount.setAtIndex(INT, i, 1);
            seqIds.setAtIndex(ADDRESS, i, sequence);
            outputs.set(BYTE, i, (byte) 1);
        }
        batch.set(INT, 0, n);
        batch.set(ADDRESS, 8, arena.allocateFrom(INT, tokens));
        batch.set(ADDRESS, 16, MemorySegment.NULL);
        batch.set(ADDRESS, 24, pos);
        batch.set(ADDRESS, 32, seqCount);
        batch.set(ADDRESS, 40, seqIds);
        batch.set(ADDRESS, 48, outputs);
        return batch;
    }

    private static void expect(MemorySegment params, int offset, int value, String what) {
        int actual = params.get(INT, offset);
        if (actual != value) {
            throw new IllegalStateException(what + ": default " + actual + ", expected " + value
                    + "; this library's struct layout is not the one this program knows");
        }
    }

    private static void check(int status, Path file, int position) {
        if (status != 0) {
            throw new IllegalStateException(file + ": llama_decode at position " + position + " returned " + status);
        }
    }

    private static void copyRow(MemorySegment logits, int vocab, float[] all, int row) {
        MemorySegment.copy(logits.reinterpret(4L * vocab), FLOAT, 0, all, row * vocab, vocab);
    }

    private static int argmax(float[] all, int row, int vocab) {
        int best = 0;
        for (int i = 1; i < vocab; i++) {
            if (all[row * vocab + i] > all[row * vocab + best]) {
                best = i;
            }
        }
        return best;
    }

    private static String json(int[] values) {
        return Arrays.stream(values).mapToObj(Integer::toString).collect(Collectors.joining(", ", "[", "]"));
    }

    private static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    private static void write(Path path, float[] values) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asFloatBuffer().put(values);
        Files.write(path, buffer.array());
    }
}
