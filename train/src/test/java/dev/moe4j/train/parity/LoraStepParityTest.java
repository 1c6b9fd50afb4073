package dev.moe4j.train.parity;

import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Graph;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.testing.Reference;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.model.TransformerModel;
import dev.moe4j.model.WeightMemory;
import dev.moe4j.model.lora.LoraSettings;
import dev.moe4j.model.lora.PeftAdapter;
import dev.moe4j.model.transformer.Transformer;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.Trainer;
import dev.moe4j.train.data.BatchSampler;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static dev.moe4j.core.testing.TensorAssert.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One LoRA fine-tuning step equals PEFT's (fixtures/lora/qwen3-moe, scripts/device/make_lora_fixtures.py): from the
 * adapter PEFT made (rank 4 on q, k, v, o, every expert's gate_up_proj and down_proj, and the router; non-zero
 * lora_A and lora_B), the loss (cross-entropy plus router_aux_loss_coef times the balance loss), the gradient of every
 * adapter matrix within 1e-5 relative (measured: 1.3e-6 at worst, the router's), and every element of every adapter
 * matrix after one torch.optim.AdamW step within 1e-5 (measured: 6.8e-7); the base weights take no gradient and do
 * not move. The issue asks for 1e-4; the bounds are tighter so that they still catch a term that is slightly off.
 */
class LoraStepParityTest {
    static final double LR = 1e-3;
    static final AdamW.Hyper PEFT_ADAMW = new AdamW.Hyper(0.9, 0.999, 1e-8, 0.01);
    static final LoraSettings SETTINGS = new LoraSettings(4, 8, List.of("q_proj", "k_proj", "v_proj", "o_proj",
            "experts", "router"), false, 1);

    private final Path base = TrainStepReference.fixture("qwen3-moe");
    private final Path lora = TrainStepReference.fixture("lora/qwen3-moe");
    private final Map<String, Tensor> ref = read(lora.resolve("reference.safetensors"));

    private TransformerModel model() {
        return ModelLoader.loadForLora(base, WeightMemory.MAPPED, SETTINGS, Optional.of(lora.resolve("peft")));
    }

    private int[] ids() {
        Tensor t = ref.get("input_ids");
        int[] ids = new int[(int) t.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (int) t.getLong(i);
        }
        return ids;
    }

    /** labels = input_ids shifted inside each of the two sequences; the last position predicts nothing. */
    private int[] targets() {
        int[] ids = ids();
        int length = ids.length / 2;
        int[] targets = new int[ids.length];
        for (int r = 0; r < ids.length; r++) {
            targets[r] = r % length == length - 1 ? Graph.IGNORE : ids[r + 1];
        }
        return targets;
    }

    @Test
    void lossAndEveryAdapterGradientMatchPeft() {
        try (TransformerModel m = model()) {
            Transformer model = m.transformer();
            Graph g = Graph.training();
            var pass = model.forward(g, ids(), 2, null);
            Transformer.Loss loss = model.loss(g, pass, targets());
            assertEquals(ref.get("train.loss").getFloat(0), loss.total(), 1e-5 * ref.get("train.loss").getFloat(0));
            g.backward(loss.objective());
            Map<String, Tensor> grads = PeftAdapter.tensors(model, Var::grad);
            Map<String, Tensor> expected = withPrefix("grad.");
            assertEquals(expected.keySet(), grads.keySet(), "the same adapter matrices");
            expected.forEach((k, t) -> assertClose(Reference.values(t), grads.get(k), 1e-5, "grad." + k));
            model.parameters().forEach((name, v) -> assertTrue(v.requiresGrad() || !v.hasGrad(),
                    name + " is frozen and takes no gradient"));
        }
    }

    @Test
    void theTrainersStepMovesTheAdaptersAsPeftsAdamWStepAndLeavesTheBase() {
        try (TransformerModel m = model()) {
            Transformer model = m.transformer();
            var settings = new Trainer.Settings(LearningRateSchedule.constant(LR), 0, 1, 0, 1);
            var trainer = new Trainer(model, PEFT_ADAMW, AdamW.ALL, settings);
            assertEquals(model.adapters().keySet(), trainer.parameters().keySet(), "only the adapters train");
            float[] router = model.moeLayers().getFirst().router().parameters().getFirst().value().toFloatArray();
            var batch = new BatchSampler.Batch(ids(), targets(), new int[2]);
            StepMetrics step = trainer.step((s, micro, micros) -> batch);
            assertEquals(ref.get("train.loss").getFloat(0), step.loss(), 1e-5 * ref.get("train.loss").getFloat(0));
            Map<String, Tensor> after = PeftAdapter.tensors(model, Parameter::value);
            double worst = 0;
            for (var e : withPrefix("after_step.").entrySet()) {
                double[] expected = Reference.values(e.getValue()), actual = Reference.values(after.get(e.getKey()));
                for (int i = 0; i < expected.length; i++) {
                    worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
                }
            }
            assertTrue(worst <= 1e-5, "largest difference after the step: " + worst);
            assertEquals(java.util.Arrays.toString(router), java.util.Arrays.toString(
                    model.moeLayers().getFirst().router().parameters().getFirst().value().toFloatArray()),
                    "the frozen router weight did not move");
        }
    }

    private Map<String, Tensor> withPrefix(String prefix) {
        var out = new LinkedHashMap<String, Tensor>();
        ref.forEach((k, t) -> {
            if (k.startsWith(prefix)) {
                out.put(k.substring(prefix.length()), t);
            }
        });
        return out;
    }

    private static Map<String, Tensor> read(Path file) {
        var out = new LinkedHashMap<String, Tensor>();
        try (var r = SafetensorsReader.open(file)) {
            for (String n : r.names()) {
                out.put(n, r.tensor(n).copy());
            }
        }
        return out;
    }
}
