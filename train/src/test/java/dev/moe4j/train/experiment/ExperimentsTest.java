package dev.moe4j.train.experiment;

import dev.moe4j.model.config.ModelConfig;
import dev.moe4j.model.config.ParameterCount;
import dev.moe4j.train.config.TrainConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ExperimentsTest {
    private static ModelConfig model(Experiment e, Variant v, boolean quick) {
        return TrainConfig.parse(ExperimentRunner.definition(e, v, 1, quick)).model().orElseThrow();
    }

    private static Map<String, ComputeBudget> budgets(Experiment e, boolean quick) {
        var out = new LinkedHashMap<String, ComputeBudget>();
        var base = e.resolve(quick);
        for (Variant v : e.variants(quick)) {
            out.put(v.name(), ComputeBudget.of(model(e, v, quick), base.tokensPerForward(), base.integer("context")));
        }
        return out;
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void everyVariantOfEveryExperimentIsAValidTrainingConfiguration(boolean quick) {
        for (Experiment e : Experiments.ALL) {
            var names = new HashSet<String>();
            List<Variant> variants = e.variants(quick);
            assertTrue(variants.size() >= 1, e.name());
            for (Variant v : variants) {
                assertTrue(names.add(v.name()), e.name() + ": duplicate variant " + v.name());
                assertTrue(model(e, v, quick).numLayers() > 0);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void routersAreComparedAtEqualExpertComputePerToken(boolean quick) {
        var b = budgets(Experiments.ROUTING, quick);
        double top2 = b.get("top2").expertMacs();
        b.forEach((name, budget) -> assertEquals(top2, budget.expertMacs(), 1e-9 * top2, name));
        // Soft MoE pays for its slots' mixing on top of that; the others only for a router of E x d.
        assertTrue(b.get("soft").ffnMacs() > b.get("top2").ffnMacs());
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void fineGrainedAndSharedExpertsKeepTheActiveComputeAndFineGrainedKeepsTheParameters(boolean quick) {
        var b = budgets(Experiments.GRANULARITY, quick);
        double coarse = b.get("coarse").expertMacs();
        b.forEach((name, budget) -> assertEquals(coarse, budget.expertMacs(), 1e-9 * coarse, name));
        var e = Experiments.GRANULARITY;
        var variants = e.variants(quick);
        long coarseExperts = ParameterCount.of(model(e, variants.get(0), quick)).routedExperts();
        long fineExperts = ParameterCount.of(model(e, variants.get(2), quick)).routedExperts();
        assertEquals(coarseExperts, fineExperts);
    }

    @Test
    void theDenseBaselinesHaveTheMoesActiveAndTotalFeedForwardParameters() {
        var e = Experiments.MOE_VS_DENSE;
        var v = e.variants(false);
        ParameterCount moe = ParameterCount.of(model(e, v.get(0), false));
        ParameterCount active = ParameterCount.of(model(e, v.get(1), false));
        ParameterCount total = ParameterCount.of(model(e, v.get(2), false));
        assertEquals(moe.activeRoutedExperts(), active.denseMlps());
        assertEquals(moe.routedExperts(), total.denseMlps());
        var b = budgets(e, false);
        assertEquals(b.get("moe").expertMacs(), b.get("dense-active").expertMacs(), 1e-6);
        assertEquals(4 * b.get("moe").expertMacs(), b.get("dense-total").expertMacs(), 1e-6);
    }

    @Test
    void quickKeepsTheShapeOfTheExperiment() {
        for (Experiment e : Experiments.ALL) {
            var full = e.variants(false);
            var quick = e.variants(true);
            assertEquals(full.stream().map(Variant::name).toList(), quick.stream().map(Variant::name).toList());
            for (int i = 0; i < full.size(); i++) {
                var f = model(e, full.get(i), false);
                var q = model(e, quick.get(i), true);
                assertEquals(f.moe().map(m -> m.experts()), q.moe().map(m -> m.experts()), e.name());
                assertEquals(f.moe().map(m -> m.topK()), q.moe().map(m -> m.topK()), e.name());
            }
        }
    }
}
