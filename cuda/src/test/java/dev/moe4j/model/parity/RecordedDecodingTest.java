package dev.moe4j.model.parity;

import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.backend.MemoryScope;
import dev.moe4j.cuda.CudaDevice;
import dev.moe4j.cuda.Gpu;
import dev.moe4j.cuda.Precision;
import dev.moe4j.model.InferenceState;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.generate.LogitsProcessors;
import dev.moe4j.model.transformer.ForwardPass;
import dev.moe4j.model.transformer.KvCache;
import dev.moe4j.model.transformer.Transformer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Decoding steps that read their ids and positions on the GPU, recorded as CUDA graphs and replayed
 * ({@code Transformer.decode}), compute bit for bit what the direct launches of {@code Transformer.forward} compute,
 * one sequence and several at once, at every position; where a family's step cannot be recorded (host routing, F32
 * precision's grouped experts, latent attention's gathers) it runs directly from the same inputs, equally exactly.
 */
class RecordedDecodingTest {
    private static final int STEPS = 6;

    static Stream<Arguments> cases() {
        var cases = new ArrayList<Arguments>();
        for (String name : List.of("qwen3-moe", "mixtral", "qwen2-moe", "olmoe", "gpt-oss", "deepseek-v3")) {
            cases.add(Arguments.of(name, Precision.BF16));
        }
        cases.add(Arguments.of("qwen3-moe", Precision.F32));
        cases.add(Arguments.of("mixtral", Precision.F32));
        return cases.stream();
    }

    @ParameterizedTest(name = "{0} in {1}")
    @MethodSource("cases")
    void recordedStepsEqualDirectLaunchesBitForBit(String name, Precision precision) {
        CudaDevice d = Gpu.device(precision);
        var ref = new HfReference(name);
        try (TransformerModel model = ref.load(d.backend())) {
            Transformer t = model.transformer();
            int[] prompt = ref.greedyPrompt();
            int capacity = prompt.length + STEPS;
            InferenceState recorded = model.newState(capacity);
            KvCache direct = t.newCache(capacity);
            float[] got = model.forward(recorded, prompt, true, null).toFloatArray();
            float[] want = direct(d, () -> t.forward(Graph.inference(), direct, prompt, true, null));
            for (int step = 0; step < STEPS; step++) {
                int[] next = {LogitsProcessors.argmax(want)};
                got = model.forward(recorded, next, true, null).toFloatArray();
                want = direct(d, () -> t.forward(Graph.inference(), direct, next, true, null));
                assertArrayEquals(want, got, name + ": logits of decoding step " + step);
            }
            if (precision == Precision.BF16 && (name.equals("qwen3-moe") || name.equals("mixtral"))) {
                assertTrue(t.recordedDecodingSteps() > 0, name + ": the decoding step was not recorded");
            }
        }
    }

    @ParameterizedTest(name = "{0} in {1}")
    @MethodSource("cases")
    void recordedBatchedStepsEqualDirectBatchedLaunchesBitForBit(String name, Precision precision) {
        CudaDevice d = Gpu.device(precision);
        var ref = new HfReference(name);
        try (TransformerModel model = ref.load(d.backend())) {
            Transformer t = model.transformer();
            int[] prompt = ref.greedyPrompt();
            int sequences = 3;
            var recorded = new ArrayList<InferenceState>();
            var direct = new ArrayList<KvCache>();
            var next = new ArrayList<int[]>();
            for (int s = 0; s < sequences; s++) {
                // prompts of different lengths: the sequences decode at different positions
                int[] own = Arrays.copyOf(prompt, prompt.length - s);
                recorded.add(model.newState(own.length + STEPS));
                direct.add(t.newCache(own.length + STEPS));
                model.forward(recorded.getLast(), own, true, null);
                KvCache cache = direct.getLast();
                next.add(new int[] {LogitsProcessors.argmax(direct(d, () -> t.forward(Graph.inference(), cache, own, true, null)))});
            }
            for (int step = 0; step < STEPS; step++) {
                float[] got = model.forward(recorded, next).toFloatArray();
                var tokens = List.copyOf(next);
                float[] want = direct(d, () -> t.forward(Graph.inference(), direct, tokens, true, null));
                assertArrayEquals(want, got, name + ": logits of batched decoding step " + step);
                int vocab = want.length / sequences;
                for (int s = 0; s < sequences; s++) {
                    next.set(s, new int[] {LogitsProcessors.argmax(Arrays.copyOfRange(want, s * vocab, (s + 1) * vocab))});
                }
            }
        }
    }

    /** The logits of a direct pass as host floats, its device memory released. */
    private static float[] direct(CudaDevice d, Supplier<ForwardPass> pass) {
        d.makeCurrent();
        try (var scope = MemoryScope.open()) {
            Tensor logits = pass.get().logits().value();
            return logits.toHost().toFloatArray();
        }
    }
}
