package dev.moe4j.train.vision;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.vision.VisionTransformer;
import dev.moe4j.moe.dispatch.Priority;
import dev.moe4j.moe.router.RoutingPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The vision pipeline on the committed Fashion-MNIST subset: reading, training, evaluating at lower capacity. */
class VisionTrainingTest {
    static final Path SUBSET = Path.of("../data/fashion-mnist-subset");

    static VisionModels tiny(String router, long seed) {
        return new VisionModels(7, 16, 2, 2, 16, router, 4, 2, 1.0, Priority.SCORE, 2, 0.01, seed);
    }

    @Test
    void theSubsetReadsAsFashionMnistSplits() {
        var splits = FashionMnist.read(SUBSET);
        assertEquals(320, splits.train().count());
        assertEquals(160, splits.test().count());
        assertEquals(28, splits.train().size());
        assertEquals("Ankle boot", splits.train().classes().get(9));
        assertEquals(9, splits.train().label(0), "Fashion-MNIST's first training image is an ankle boot");
    }

    @Test
    void trainingLowersTheLossOfEveryRouter() {
        var data = FashionMnist.read(SUBSET).train();
        for (String router : List.of("none", "topk", "expert-choice", "soft", "dense")) {
            var model = new VisionTransformer(tiny(router, 3).config(28, 10));
            var losses = new ArrayList<Double>();
            var settings = new ImageTrainer.Settings(4, 32, 3e-3, 0.0, 2, 1.0, 5);
            var result = ImageTrainer.train(model, data, settings, s -> losses.add(s.loss()));
            assertEquals(40, result.steps());
            double first = (losses.get(0) + losses.get(1)) / 2, last = (losses.get(38) + losses.get(39)) / 2;
            assertTrue(last < first - 0.15, router + ": loss " + first + " → " + last);
        }
    }

    @Test
    void lowerCapacityProcessesFewerPatchesAndPriorityChangesWhich() {
        var splits = FashionMnist.read(SUBSET);
        var model = new VisionTransformer(tiny("topk", 1).config(28, 10));
        ImageTrainer.train(model, splits.train(), new ImageTrainer.Settings(1, 32, 3e-3, 0, 2, 1, 1), s -> {
        });
        var full = ImageEvaluation.of(model, splits.test(), RoutingPolicy.TRAINED, 80, 0, 79);
        var score = ImageEvaluation.of(model, splits.test(), VmoeExperiment.policy(0.25, Priority.SCORE), 80, 0, 79);
        var position = ImageEvaluation.of(model, splits.test(), VmoeExperiment.policy(0.25, Priority.POSITION), 80, 0, 79);
        for (var e : List.of(score, position)) {
            for (var l : e.layers()) {
                // V-MoE's rule: 0.25 · 80 · 16 patches · 2 / 4 experts = 160 a batch, a multiple of 4 already.
                assertTrue(l.servedShare() <= 0.25 + 1e-9, "served " + l.servedShare());
            }
            assertTrue(e.processedShare() < full.processedShare());
        }
        // Position order serves the batch's first image whole and drops patches of its last, where the experts
        // are full (an expert few patches chose may still take some); priority drops elsewhere.
        long lastKept = java.util.Arrays.stream(position.patchExperts()[1][0]).filter(x -> x >= 0).count();
        assertTrue(java.util.Arrays.stream(position.patchExperts()[0][0]).allMatch(x -> x >= 0), "the first is kept");
        assertTrue(lastKept < 16, "the last image loses patches: kept " + lastKept);
        assertNotEquals(java.util.Arrays.deepToString(score.patchExperts()),
                java.util.Arrays.deepToString(position.patchExperts()));
    }

    @Test
    void labelsThatDisagreeWithTheImagesAreRefusedNamingTheFile(@TempDir Path dir) throws Exception {
        Files.copy(SUBSET.resolve("t10k-images-idx3-ubyte.gz"), dir.resolve("train-images-idx3-ubyte.gz"));
        Files.copy(SUBSET.resolve("train-labels-idx1-ubyte.gz"), dir.resolve("train-labels-idx1-ubyte.gz"));
        Files.copy(SUBSET.resolve("t10k-images-idx3-ubyte.gz"), dir.resolve("t10k-images-idx3-ubyte.gz"));
        Files.copy(SUBSET.resolve("t10k-labels-idx1-ubyte.gz"), dir.resolve("t10k-labels-idx1-ubyte.gz"));
        var e = assertThrows(BadInputException.class, () -> FashionMnist.read(dir));
        assertTrue(e.getMessage().contains("train-labels-idx1-ubyte.gz: count: 320 labels for the 160 images"),
                e.getMessage());
        Files.delete(dir.resolve("t10k-labels-idx1-ubyte.gz"));
        Files.delete(dir.resolve("train-labels-idx1-ubyte.gz"));
        var missing = assertThrows(BadInputException.class, () -> FashionMnist.read(dir));
        assertTrue(missing.getMessage().contains("no train-labels-idx1-ubyte"), missing.getMessage());
        assertFalse(missing.getMessage().contains("\n"));
    }

    @Test
    void equalComputeVariantsHaveEqualMultiplyAddsInTheirMlps() {
        var v = VmoeExperiment.variants(false);
        long dense = ImageTrainer.forwardMacs(v.get(0).models().config(28, 10));
        long vmoe = ImageTrainer.forwardMacs(v.get(1).models().config(28, 10));
        long soft = ImageTrainer.forwardMacs(v.get(2).models().config(28, 10));
        // The MoE models add only their routers' products (and Soft MoE its dispatch and combine mixes): a few %.
        assertTrue(vmoe > dense && vmoe < dense * 1.05, dense + " vs " + vmoe);
        assertTrue(soft > dense && soft < dense * 1.10, dense + " vs " + soft);
    }
}
