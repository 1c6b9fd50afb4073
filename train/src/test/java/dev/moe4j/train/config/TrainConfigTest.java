package dev.moe4j.train.config;

import dev.moe4j.core.BadInputException;
import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.moe.MoeConfig;
import dev.moe4j.moe.RouterKind;
import dev.moe4j.moe.dispatch.Overflow;
import dev.moe4j.moe.loss.ImportanceLoss;
import dev.moe4j.moe.loss.LoadLoss;
import dev.moe4j.moe.loss.RouterZLoss;
import dev.moe4j.moe.router.Noise;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainConfigTest {
    @TempDir
    Path dir;

    private static TrainConfig parse(Map<String, String> flags) {
        return TrainConfig.parse(TrainSettings.resolve(Map.of(), flags));
    }

    private static ModelConfig model(Map<String, String> flags) {
        return parse(flags).model().orElseThrow();
    }

    @Test
    void theDefaultsDescribeAMixtralLikeMoeOnTheBundledShakespeare() {
        TrainConfig c = parse(Map.of());
        ModelConfig m = c.model().orElseThrow();
        MoeConfig moe = m.moe().orElseThrow();
        assertEquals(8, moe.experts());
        assertEquals(2, moe.topK());
        assertTrue(moe.normalizeTopK());
        assertEquals(RouterKind.TOP_K, moe.router());
        assertEquals(m.numLayers(), m.numMoeLayers());
        assertEquals(Path.of("data/shakespeare"), c.data().paths().getFirst());
        assertEquals(Path.of("runs", "shakespeare-moe"), c.run().out());
    }

    @Test
    void aConfigFileSetsOptionsByTheFlagsNamesAndFlagsWin() throws Exception {
        Path yaml = dir.resolve("run.yaml");
        Files.writeString(yaml, "layers: 3\ntop-k: 1\nrouter: expert-choice\ncapacity-factor: 2\nlr: 1e-3\n"
                + "data: [a.txt, b.txt]\nshuffle: false\n");
        Path json = dir.resolve("run.json");
        Files.writeString(json, "{\"layers\": 3, \"top-k\": 1, \"router\": \"expert-choice\", \"capacity-factor\": 2,"
                + " \"lr\": 0.001, \"data\": [\"a.txt\", \"b.txt\"], \"shuffle\": false}");
        for (Path file : new Path[] {yaml, json}) {
            Map<String, String> values = TrainSettings.resolve(ConfigFile.read(file), Map.of("layers", "5"));
            TrainConfig c = TrainConfig.parse(values);
            ModelConfig m = c.model().orElseThrow();
            assertEquals(5, m.numLayers(), "the flag overrides the file");
            assertEquals(RouterKind.EXPERT_CHOICE, m.moe().orElseThrow().router());
            assertEquals(1e-3, c.optimiser().lr());
            assertEquals(2, c.data().paths().size());
            assertFalse(c.data().shuffle());
        }
    }

    @Test
    void unknownKeysAndBadValuesAreOneLineErrorsNamingThem() throws Exception {
        Path yaml = dir.resolve("bad.yaml");
        Files.writeString(yaml, "layers: 2\nlearning-rate: 0.1\n");
        var e = assertThrows(BadInputException.class, () -> ConfigFile.read(yaml));
        assertTrue(e.getMessage().contains("bad.yaml") && e.getMessage().contains("'learning-rate'"), e.getMessage());
        var flag = assertThrows(BadInputException.class, () -> parse(Map.of("layers", "two")));
        assertEquals("--layers: expected a whole number, got 'two'", flag.getMessage());
        var choice = assertThrows(BadInputException.class, () -> parse(Map.of("router", "best")));
        assertTrue(choice.getMessage().startsWith("--router: expected one of topk, dense, expert-choice, soft"), choice.getMessage());
        var ec = assertThrows(BadInputException.class, () -> parse(Map.of("router", "expert-choice")));
        assertTrue(ec.getMessage().contains("--capacity-factor"), ec.getMessage());
        assertFalse(flag.getMessage().contains("\n"));
    }

    @Test
    void theDenseBaselineHasTheActiveFlopsOfTheMoe() {
        ModelConfig moe = model(Map.of("shared-experts", "1"));
        ModelConfig dense = model(Map.of("shared-experts", "1", "experts", "0"));
        assertTrue(dense.moe().isEmpty());
        assertEquals(0, dense.numMoeLayers());
        ParameterCount a = ParameterCount.of(moe), b = ParameterCount.of(dense);
        // The same matrices per token, less the router's few parameters.
        assertEquals(a.active() - a.router(), b.active());
    }

    @Test
    void fineGrainedExpertsKeepParametersAndActiveFlops() {
        ModelConfig coarse = model(Map.of());
        ModelConfig fine = model(Map.of("granularity", "4"));
        MoeConfig c = coarse.moe().orElseThrow(), f = fine.moe().orElseThrow();
        assertEquals(4 * c.experts(), f.experts());
        assertEquals(4 * c.topK(), f.topK());
        assertEquals(c.intermediate() / 4, f.intermediate());
        ParameterCount pc = ParameterCount.of(coarse), pf = ParameterCount.of(fine);
        assertEquals(pc.routedExperts(), pf.routedExperts());
        assertEquals(pc.activeRoutedExperts(), pf.activeRoutedExperts());
    }

    @Test
    void everyOptionOfTheMoeLayerReachesItsConfig() {
        ModelConfig m = model(Map.ofEntries(Map.entry("layers", "4"), Map.entry("moe-every", "2"),
                Map.entry("noise", "jitter"), Map.entry("noise-amount", "0.02"), Map.entry("capacity-factor", "1.25"),
                Map.entry("overflow", "next-choice"), Map.entry("z-loss", "0.001"), Map.entry("bias-balancing", "0.001"),
                Map.entry("shared-experts", "2"), Map.entry("shared-gate", "true"), Map.entry("scoring", "sigmoid"),
                Map.entry("groups", "4"), Map.entry("top-groups", "2"), Map.entry("normalize-topk", "false")));
        assertEquals(java.util.List.of(0, 2), m.denseLayerIndices(), "layers 1 and 3 are MoE (every 2nd)");
        MoeConfig moe = m.moe().orElseThrow();
        assertEquals(Noise.jitter(0.02), moe.noise());
        assertEquals(1.25, moe.capacity().factor());
        assertEquals(Overflow.NEXT_CHOICE, moe.overflow());
        assertTrue(moe.losses().stream().anyMatch(t -> t.loss() instanceof RouterZLoss && t.coefficient() == 0.001));
        assertTrue(moe.selectionBias());
        assertEquals(2 * moe.intermediate(), moe.sharedIntermediate());
        assertTrue(moe.sharedGate());
        assertFalse(moe.normalizeTopK());
        assertEquals(4, moe.groupLimit().groups());
    }

    @Test
    void expertChoiceDecodedByAPredictorTrainsOneAndOnlyThen() {
        MoeConfig predicted = model(Map.of("router", "expert-choice", "capacity-factor", "2",
                "expert-choice-decode", "predictor", "predictor-width", "0", "predictor-stop-gradient", "false",
                "predictor-top-k", "2", "predictor-loss", "0.5")).moe().orElseThrow();
        assertEquals(dev.moe4j.moe.router.ExpertChoiceDecode.PREDICTOR, predicted.expertChoiceDecode());
        assertEquals(java.util.Optional.of(new dev.moe4j.moe.router.PredictorOptions(0, false, 2, 0.5)),
                predicted.predictor());
        assertEquals(java.util.Optional.of(dev.moe4j.moe.router.PredictorOptions.defaults()),
                model(Map.of("router", "expert-choice", "capacity-factor", "2", "expert-choice-decode", "predictor"))
                        .moe().orElseThrow().predictor());
        assertTrue(model(Map.of("router", "expert-choice", "capacity-factor", "2")).moe().orElseThrow()
                .predictor().isEmpty(), "threshold decoding trains no predictor");
        var topK = assertThrows(BadInputException.class, () -> parse(Map.of("router", "expert-choice",
                "capacity-factor", "2", "expert-choice-decode", "predictor", "predictor-top-k", "9")));
        assertEquals("--predictor-top-k 9 is more than the 8 experts", topK.getMessage());
        var width = assertThrows(BadInputException.class, () -> parse(Map.of("router", "expert-choice",
                "capacity-factor", "2", "expert-choice-decode", "predictor", "predictor-width", "-1")));
        assertTrue(width.getMessage().startsWith("--predictor-width: "), width.getMessage());
    }

    @Test
    void importanceAndLoadLossesDefaultToThePaperOfTheGateOrderAndCanBeNamed() {
        Map<String, String> noisy = Map.of("balance-loss", "importance+load", "noise", "gaussian", "noise-amount", "0.1");
        assertEquals(java.util.List.of(new ImportanceLoss(ImportanceLoss.Of.CLEAN_SOFTMAX),
                new LoadLoss(LoadLoss.Threshold.KTH_NOISY)), losses(noisy), "V-MoE's gating: V-MoE's definitions");
        var shazeer = new java.util.HashMap<>(noisy);
        shazeer.putAll(Map.of("noise", "learned", "gate-order", "topk-then-softmax"));
        assertEquals(java.util.List.of(new ImportanceLoss(ImportanceLoss.Of.TOP_K_GATES),
                new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF)), losses(shazeer), "noisy top-k: Shazeer's");
        var named = new java.util.HashMap<>(noisy);
        named.putAll(Map.of("importance-of", "noisy-softmax", "load-threshold", "kth-excluding-self"));
        assertEquals(java.util.List.of(new ImportanceLoss(ImportanceLoss.Of.NOISY_SOFTMAX),
                new LoadLoss(LoadLoss.Threshold.KTH_EXCLUDING_SELF)), losses(named));
        var bad = assertThrows(BadInputException.class, () -> parse(Map.of("importance-of", "noisy")));
        assertTrue(bad.getMessage().contains("--importance-of"), bad.getMessage());
    }

    private static java.util.List<Object> losses(Map<String, String> flags) {
        return model(flags).moe().orElseThrow().losses().stream().map(t -> (Object) t.loss()).toList();
    }

    @Test
    void resumingKeepsTheSavedOptionsAndRefusesChangedOnes() {
        Map<String, String> saved = TrainSettings.resolve(Map.of(), Map.of("lr", "0.002", "steps", "50"));
        Map<String, String> more = TrainSettings.resumed(saved, Map.of("steps", "80", "lr", "0.002"), "saved.json");
        assertEquals("80", more.get("steps"));
        assertEquals("0.002", more.get("lr"));
        var e = assertThrows(BadInputException.class,
                () -> TrainSettings.resumed(saved, Map.of("lr", "0.01"), "saved.json"));
        assertTrue(e.getMessage().contains("--lr 0.01 differs from the saved 0.002"), e.getMessage());
    }

    @Test
    void aRunNameIsOneFolderUnderRunsNeverAPathThatLeavesIt() {
        assertEquals(Path.of("runs", "ec-2"), parse(Map.of("name", "ec-2")).run().out());
        for (String name : new String[] {"../../x", "a/b", "..", ".", "/tmp/x", "a\\b", "line\nbreak"}) {
            var e = assertThrows(BadInputException.class, () -> parse(Map.of("name", name)), name);
            assertTrue(e.getMessage().startsWith("--name: expected a plain name"), e.getMessage());
        }
    }

    @Test
    void theTinyPresetReadsItsSwitchAsEveryOtherSwitchIsRead() {
        // "yes" is true for every switch, so it also turns on the preset's small model.
        assertEquals(2, model(Map.of("tiny", "yes")).numLayers());
        var e = assertThrows(BadInputException.class, () -> parse(Map.of("tiny", "--foo=1")));
        assertEquals("--tiny: expected true or false, got '--foo=1'", e.getMessage());
        var gate = assertThrows(BadInputException.class, () -> parse(Map.of("shared-gate", "maybe")));
        assertEquals("--shared-gate: expected true or false, got 'maybe'", gate.getMessage());
    }
}
