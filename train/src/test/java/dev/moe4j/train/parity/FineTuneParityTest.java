package dev.moe4j.train.parity;

import com.fasterxml.jackson.databind.JsonNode;
import dev.moe4j.core.Parameter;
import dev.moe4j.core.Tensor;
import dev.moe4j.core.autograd.Var;
import dev.moe4j.core.testing.Reference;
import dev.moe4j.io.chat.ChatTemplate;
import dev.moe4j.io.json.Json;
import dev.moe4j.io.safetensors.SafetensorsReader;
import dev.moe4j.io.tokenizer.Tokenizer;
import dev.moe4j.model.ModelLoader;
import dev.moe4j.train.StepMetrics;
import dev.moe4j.train.Trainer;
import dev.moe4j.train.TrainingRun;
import dev.moe4j.train.config.TrainConfig;
import dev.moe4j.train.config.TrainSettings;
import dev.moe4j.train.data.Example;
import dev.moe4j.train.data.ExampleBatches;
import dev.moe4j.train.data.ExampleData;
import dev.moe4j.train.optim.AdamW;
import dev.moe4j.train.optim.LearningRateSchedule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Predicate;

import static dev.moe4j.core.testing.TensorAssert.relativeError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One fine-tuning step on example data equals PyTorch's, on the qwen2-moe fixture (references made by
 * scripts/device/make_finetune_fixtures.py with transformers 5.17; resources {@code finetune/}, whose
 * reference.json says how):
 * <ul>
 *   <li>full fine-tuning on two {@code input_ids} examples of unequal length with -100 labels, padded into one
 *       batch, torch.optim.AdamW with Hugging Face Trainer's decay rule (moe4j's default);</li>
 *   <li>a step on two conversations rendered by a chat template, loss on the assistant's tokens only as TRL's
 *       assistant_only_loss takes them (transformers' return_assistant_tokens_mask), every parameter decayed
 *       (--decay-all).</li>
 * </ul>
 * Each checks the loss, every parameter's gradient norm within 1e-4 (measured: 9.4e-7 at worst) and every stored
 * parameter after the step within 1e-4 of its largest value (max|Δ| / max|ref|; measured: 9.1e-8 for the full step,
 * 5.7e-8 for the SFT step). Adam's first step moves a weight by about lr·sign(g), so the weights say little about the
 * gradients' sizes; the norms do. The weight decay (1.0 at lr 1e-3) moves a decayed weight by 1e-3 of itself, ten
 * times the tolerance: the tests see which rule was applied.
 *
 * <p>One caveat is measured, not hidden (as in {@link TrainStepParityTest}): the first step moves a weight by
 * lr·g/(|g| + ε), so where |g| is near ε = 1e-8 a float32 difference of 1e-9 in a gradient that is a near-cancellation
 * of terms a million times larger moves the weight by a sizeable part of lr (the full step has one such weight, g =
 * 9e-9, that alone puts down_proj of layer 0 at 1.8e-4; the worst tensor at 2.9e-4). Where |g| is below 1e-6 the
 * test therefore checks the gradient the reference's step implies, g = r·ε / (1 − |r|) with r = −Δ/lr, against
 * moe4j's, within 1e-5 of the tensor's largest gradient (measured: 4.4e-7 and 6.7e-8).
 */
class FineTuneParityTest {
    static final double TOLERANCE = 1e-4;

    @TempDir
    Path dir;

    static Path resource(String path) {
        try {
            return Path.of(FineTuneParityTest.class.getClassLoader().getResource(path).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("missing test resource " + path, e);
        }
    }

    static final Path MODEL = resource("fixtures/qwen2-moe");
    static final JsonNode REFERENCE = Json.read(resource("finetune/reference.json"));

    static AdamW.Hyper hyper() {
        JsonNode betas = REFERENCE.get("betas");
        return new AdamW.Hyper(betas.get(0).asDouble(), betas.get(1).asDouble(), REFERENCE.get("eps").asDouble(),
                REFERENCE.get("weight_decay").asDouble());
    }

    static double lr() {
        return REFERENCE.get("lr").asDouble();
    }

    static Tokenizer tokenizer() {
        return Tokenizer.load(MODEL.resolve("tokenizer.json"));
    }

    static ChatTemplate markedTemplate() {
        return ChatTemplate.load(resource("finetune/tokenizer_config.json"));
    }

    /** The same template without its {% generation %} blocks: Qwen2's own. */
    static ChatTemplate plainTemplate() {
        String text = markedTemplate().text().replace("{% generation %}", "").replace("{% endgeneration %}", "");
        return ChatTemplate.of("plain", text, Map.of());
    }

    static List<Example> chatExamples(ChatTemplate template) {
        Tokenizer t = tokenizer();
        return ExampleData.read(resource("finetune/chat.jsonl"), new ExampleData.Sources(t, () -> template,
                t.tokenId("<|im_end|>").getAsInt(), t.vocabSize()));
    }

    static List<Example> idExamples() {
        return ExampleData.read(resource("finetune/full_step.jsonl"), new ExampleData.Sources(null, () -> {
            throw new AssertionError("no template needed");
        }, -1, 512));
    }

    @Test
    void conversationsGetTransformersTokensAndTrlsAssistantLabelsWithOrWithoutGenerationBlocks() {
        JsonNode expected = REFERENCE.get("sft_step").get("examples");
        for (ChatTemplate template : List.of(markedTemplate(), plainTemplate())) {
            List<Example> examples = chatExamples(template);
            assertEquals(expected.size(), examples.size());
            for (int i = 0; i < examples.size(); i++) {
                assertArrayEquals(ints(expected.get(i).get("input_ids")), examples.get(i).ids(), "input_ids " + i);
                assertArrayEquals(ints(expected.get(i).get("labels")), examples.get(i).labels(), "labels " + i);
            }
        }
    }

    @Test
    void fullFineTuningOnPaddedIdExamplesIsPyTorchsAdamWStep() {
        var step = step(idExamples(), AdamW.MATRICES_ONLY);
        JsonNode ref = REFERENCE.get("full_step");
        assertEquals(ref.get("loss").asDouble(), step.metrics().loss(), 1e-5 * ref.get("loss").asDouble(), "loss");
        assertEquals(ref.get("cross_entropy").asDouble(), step.metrics().crossEntropy(), 1e-5 * ref.get("loss").asDouble());
        assertGradientNorms(ref, step.trainer());
        assertStep("finetune/full_step.safetensors", step.trainer(), AdamW.MATRICES_ONLY);
        var decayed = new TreeSet<String>();
        ref.get("decayed").forEach(n -> decayed.add(n.asText()));
        var ours = new TreeSet<String>();
        TrainStepReference.inTransformersNames(decayedOnly(step.trainer().parameters(), AdamW.MATRICES_ONLY), Var::value)
                .keySet().forEach(ours::add);
        assertEquals(decayed, ours, "the parameters Hugging Face's Trainer decays");
    }

    @Test
    void anSftStepOnAChatTemplateWithAssistantOnlyLossIsPyTorchs() {
        var step = step(chatExamples(markedTemplate()), AdamW.ALL);
        JsonNode ref = REFERENCE.get("sft_step");
        assertEquals(ref.get("loss").asDouble(), step.metrics().loss(), 1e-5 * ref.get("loss").asDouble(), "loss");
        assertGradientNorms(ref, step.trainer());
        assertStep("finetune/sft_step.safetensors", step.trainer(), AdamW.ALL);
    }

    /** The weights tell the decay rules apart: with the other rule, some parameter misses by more than the tolerance. */
    @Test
    void theOtherDecayRuleWouldMissTheReferences() {
        double full = worst("finetune/full_step.safetensors", step(idExamples(), AdamW.ALL).trainer());
        double sft = worst("finetune/sft_step.safetensors", step(chatExamples(markedTemplate()), AdamW.MATRICES_ONLY).trainer());
        assertTrue(full > 5 * TOLERANCE, "full step with every parameter decayed: " + full);
        assertTrue(sft > 5 * TOLERANCE, "SFT step with norms and biases spared: " + sft);
    }

    /**
     * The same SFT step through {@code moe4j train}'s options (--init, --data chat.jsonl, --chat-template,
     * --decay-all, a constant rate, no clipping): the saved model holds PyTorch's weights (all of them within 1e-4:
     * measured 1.3e-5, no gradient of this step being near ε), and the saved tokenizer_config.json the template it
     * trained with.
     */
    @Test
    void theTrainCommandsOptionsTakeTheSameSftStep() throws Exception {
        Path template = dir.resolve("chat.jinja"), out = dir.resolve("run");
        Files.writeString(template, markedTemplate().text());
        var flags = new HashMap<String, String>();
        flags.putAll(Map.of("init", MODEL.toString(), "data", resource("finetune/chat.jsonl").toString(),
                "chat-template", template.toString(), "steps", "1", "lr", Double.toString(lr()), "schedule", "constant",
                "warmup", "0", "clip", "0", "batch", "2", "shuffle", "false"));
        flags.putAll(Map.of("valid-fraction", "0", "samples", "0", "eval-every", "0", "decay-all", "true",
                "beta1", Double.toString(hyper().beta1()), "beta2", Double.toString(hyper().beta2()),
                "eps", Double.toString(hyper().eps()), "weight-decay", Double.toString(hyper().weightDecay()),
                "out", out.toString(), "cache", dir.resolve("cache").toString()));
        var summary = TrainingRun.run(TrainConfig.parse(TrainSettings.resolve(Map.of(), flags)), new TrainingRun.Listener() { });
        double loss = REFERENCE.get("sft_step").get("loss").asDouble();
        assertEquals(loss, summary.trainLoss(), 1e-5 * loss);
        var trained = ModelLoader.loadForTraining(out);
        var named = new LinkedHashMap<String, Parameter>();
        trained.parameters().forEach((n, v) -> named.put(n, (Parameter) v));
        assertWeights("finetune/sft_step.safetensors", named, TOLERANCE);
        assertEquals(markedTemplate().text(), ChatTemplate.load(out.resolve("tokenizer_config.json")).text());
    }

    record Step(Trainer trainer, StepMetrics metrics) {
    }

    /** One step of the trainer as the fixtures were made: a constant rate, no clipping, both examples in one batch. */
    static Step step(List<Example> examples, Predicate<Parameter> decays) {
        var settings = new Trainer.Settings(LearningRateSchedule.constant(lr()), 0, 1, 0, 1);
        var trainer = new Trainer(ModelLoader.loadForTraining(MODEL), hyper(), decays, settings);
        var batches = new ExampleBatches(examples, 2, 1, false);
        StepMetrics m = trainer.step(batches::batch);
        return new Step(trainer, m);
    }

    private static void assertGradientNorms(JsonNode ref, Trainer trainer) {
        Map<String, Tensor> grads = TrainStepReference.inTransformersNames(trainer.parameters(), Var::grad);
        JsonNode norms = ref.get("grad_norms");
        assertEquals(norms.size(), grads.size(), "a norm for every parameter");
        grads.forEach((name, g) -> {
            double expected = norms.get(name).asDouble(), norm = 0;
            for (double v : Reference.values(g)) {
                norm += v * v;
            }
            assertEquals(expected, Math.sqrt(norm), TOLERANCE * expected, "gradient norm of " + name);
        });
    }

    /**
     * Every stored parameter after the step within the tolerance where moe4j's gradient is at least 1e-6; below, the
     * gradient the reference's first AdamW step implies equals moe4j's within 1e-5 of the tensor's largest gradient.
     */
    private static void assertStep(String file, Trainer trainer, Predicate<Parameter> decays) {
        Map<String, Tensor> ours = TrainStepReference.inTransformersNames(trainer.parameters(), Var::value);
        Map<String, Tensor> grads = TrainStepReference.inTransformersNames(trainer.parameters(), Var::grad);
        var initial = new LinkedHashMap<String, Parameter>();
        ModelLoader.loadForTraining(MODEL).parameters().forEach((n, v) -> initial.put(n, (Parameter) v));
        Map<String, Tensor> before = TrainStepReference.inTransformersNames(initial, Var::value);
        var decayed = TrainStepReference.inTransformersNames(decayedOnly(initial, decays), Var::value).keySet();
        double lr = lr(), eps = hyper().eps(), keep = 1 - lr * hyper().weightDecay();
        Map<String, Tensor> expected = read(file);
        assertTrue(expected.size() >= 10, file + " holds " + expected.size() + " tensors");
        expected.forEach((name, t) -> {
            double[] e = Reference.values(t), a = Reference.values(ours.get(name));
            double[] g = Reference.values(grads.get(name)), b = Reference.values(before.get(name));
            double maxRef = 1e-30, maxGrad = 1e-30, weightError = 0, gradError = 0;
            for (int i = 0; i < e.length; i++) {
                maxRef = Math.max(maxRef, Math.abs(e[i]));
                maxGrad = Math.max(maxGrad, Math.abs(g[i]));
            }
            for (int i = 0; i < e.length; i++) {
                if (Math.abs(g[i]) >= 1e-6) {
                    weightError = Math.max(weightError, Math.abs(e[i] - a[i]));
                } else {
                    double r = -(e[i] - b[i] * (decayed.contains(name) ? keep : 1)) / lr;
                    gradError = Math.max(gradError, Math.abs(r * eps / (1 - Math.abs(r)) - g[i]));
                }
            }
            assertTrue(weightError / maxRef <= TOLERANCE, name + " after the step: " + weightError / maxRef);
            assertTrue(gradError / maxGrad <= 1e-5, name + ": the gradient the reference step implies where |g| < 1e-6: "
                    + gradError / maxGrad + " of the largest");
        });
    }

    private static void assertWeights(String file, Map<String, ? extends Var> parameters, double tolerance) {
        Map<String, Tensor> ours = TrainStepReference.inTransformersNames(parameters, Var::value);
        Map<String, Tensor> expected = read(file);
        assertTrue(expected.size() >= 10, file + " holds " + expected.size() + " tensors");
        expected.forEach((name, t) -> {
            double error = relativeError(Reference.values(t), Reference.values(ours.get(name)));
            assertTrue(error <= tolerance, name + " after the step: " + error + " > " + tolerance);
        });
    }

    private static double worst(String file, Trainer trainer) {
        Map<String, Tensor> ours = TrainStepReference.inTransformersNames(trainer.parameters(), Var::value);
        double worst = 0;
        for (var e : read(file).entrySet()) {
            worst = Math.max(worst, relativeError(Reference.values(e.getValue()), Reference.values(ours.get(e.getKey()))));
        }
        return worst;
    }

    /** The stored parameters after the step, by transformers' names. */
    private static Map<String, Tensor> read(String file) {
        var out = new LinkedHashMap<String, Tensor>();
        try (var reader = SafetensorsReader.open(resource(file))) {
            for (String n : reader.names()) {
                if (n.startsWith("after_step.")) {
                    out.put(n.substring("after_step.".length()), reader.tensor(n).copy());
                }
            }
        }
        return out;
    }

    private static Map<String, Parameter> decayedOnly(Map<String, Parameter> parameters, Predicate<Parameter> decays) {
        var out = new LinkedHashMap<String, Parameter>();
        parameters.forEach((n, p) -> {
            if (decays.test(p)) {
                out.put(n, p);
            }
        });
        return out;
    }

    private static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }
}
