package dev.moe4j.train.data;

import dev.moe4j.core.autograd.Graph;
import dev.moe4j.train.data.BatchSampler.Batch;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

class ExampleBatchesTest {
    static final int I = Graph.IGNORE;

    static Example example(String name, int[] ids, int[] labels) {
        return new Example(name, ids, labels);
    }

    @Test
    void aBatchIsPaddedOnTheRightToItsLongestExampleAndPositionTPredictsLabelTPlusOne() {
        var a = example("a", new int[] {11, 12, 13}, new int[] {I, 12, 13});
        var b = example("b", new int[] {21, 22, 23, 24, 25}, new int[] {21, I, I, 24, 25});
        Batch batch = new ExampleBatches(List.of(a, b), 2, 1, false).batch(0, 0, 1);
        assertArrayEquals(new int[] {11, 12, 13, 0, 0, 21, 22, 23, 24, 25}, batch.inputs());
        assertArrayEquals(new int[] {12, 13, I, I, I, I, I, 24, 25, I}, batch.targets());
        assertArrayEquals(new int[] {3, 5}, batch.lengths());
        assertEquals(2, batch.sequences());
        assertEquals(8, batch.tokens());
        assertEquals(4, batch.lossTokens());
        boolean[] rows = batch.tokenRows();
        assertArrayEquals(new boolean[] {true, true, true, false, false, true, true, true, true, true}, rows);
        assertEquals(a.lossTokens() + b.lossTokens(), batch.lossTokens());
    }

    @Test
    void inOrderExamplesComeAsTheFileHasThemRoundAndRound() {
        var examples = IntStream.range(0, 5).mapToObj(i -> example("e" + i, new int[] {i, i}, new int[] {i, i})).toList();
        var batches = new ExampleBatches(examples, 2, 1, false);
        assertArrayEquals(new int[] {0, 1}, batches.batch(0, 0, 1).starts());
        assertArrayEquals(new int[] {4, 0}, batches.batch(1, 0, 2).starts()); // step 1 of 2 micro-steps: draws 4, 5
        assertArrayEquals(new int[] {1, 2}, batches.batch(1, 1, 2).starts());
    }

    @Test
    void shuffledEpochsShowEveryExampleOnceAndDependOnlyOnTheSeedAndTheStep() {
        int n = 7;
        var examples = IntStream.range(0, n).mapToObj(i -> example("e" + i, new int[] {i, i}, new int[] {i, i})).toList();
        var order = new ArrayList<Integer>();
        var one = new ExampleBatches(examples, 3, 5, true);
        for (int step = 0; step < 14; step++) {
            Arrays.stream(one.batch(step, 0, 1).starts()).forEach(order::add);
        }
        for (int epoch = 0; epoch < 6; epoch++) {
            assertEquals(n, new HashSet<>(order.subList(epoch * n, epoch * n + n)).size(), "epoch " + epoch);
        }
        assertNotEquals(order.subList(0, n), order.subList(n, 2 * n), "each epoch in its own order");
        // another sampler, asked out of order (a resumed run), gives the same batches
        var again = new ExampleBatches(examples, 3, 5, true);
        assertArrayEquals(one.batch(9, 0, 1).starts(), again.batch(9, 0, 1).starts());
        assertArrayEquals(one.batch(2, 0, 1).starts(), again.batch(2, 0, 1).starts());
        var other = new ExampleBatches(examples, 3, 6, true);
        var otherOrder = new ArrayList<Integer>();
        for (int step = 0; step < 14; step++) {
            Arrays.stream(other.batch(step, 0, 1).starts()).forEach(otherOrder::add);
        }
        assertNotEquals(order, otherOrder, "another seed, another order");
    }

    @Test
    void evaluationTakesEveryValidationExampleInOrderTheLastBatchSmaller() {
        var examples = IntStream.range(0, 5).mapToObj(i -> example("e" + i, new int[] {i, i, i}, new int[] {i, i, i})).toList();
        List<Batch> batches = ExampleBatches.evaluationBatches(examples, 2, 10);
        assertEquals(3, batches.size());
        assertEquals(1, batches.get(2).sequences());
        assertArrayEquals(new int[] {4, 4, 4}, batches.get(2).inputs());
        assertEquals(2, ExampleBatches.evaluationBatches(examples, 2, 2).size());
    }

    @Test
    void packedExamplesKeepTheirLabelsAndNoneIsPredictedFromTheOneBefore() {
        var a = example("a", new int[] {1, 2, 3}, new int[] {1, I, 3});
        var b = example("b", new int[] {4, 5, 6, 7}, new int[] {4, 5, 6, 7});
        TokenStream s = ExampleBatches.pack(List.of(a, b));
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6, 7}, s.tokens());
        assertArrayEquals(new int[] {I, I, 3, I, 5, 6, 7}, s.labels());
        assertArrayEquals(new int[] {0, 3}, s.documentStarts());
        Batch window = new BatchSampler(s, 1, 6, 0, false).batch(0, 0, 1);
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, window.inputs());
        assertArrayEquals(new int[] {I, 3, I, 5, 6, 7}, window.targets());
        assertNull(window.tokenRows(), "a window has no padding");
    }
}
