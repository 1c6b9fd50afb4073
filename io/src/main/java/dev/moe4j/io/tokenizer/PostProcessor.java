package dev.moe4j.io.tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * Adds the special tokens a model expects around an encoded sequence (tokenizer.json's "post_processor"), when
 * the caller asks for special tokens. Single sequences only: moe4j never encodes sentence pairs.
 */
sealed interface PostProcessor {
    /** A token the processor inserts. */
    record Special(int id, String token) {
    }

    /** Inserts the specials into the ids and, unless null, the token strings. */
    void process(BpeModel.IntList ids, List<String> tokens);

    /** Applies processors in order. */
    record Sequence(List<PostProcessor> steps) implements PostProcessor {
        @Override
        public void process(BpeModel.IntList ids, List<String> tokens) {
            for (PostProcessor p : steps) p.process(ids, tokens);
        }
    }

    /** The ByteLevel processor only trims offsets, which moe4j does not report: ids pass through. */
    record ByteLevelOffsets() implements PostProcessor {
        @Override
        public void process(BpeModel.IntList ids, List<String> tokens) {
        }
    }

    /** TemplateProcessing's single-sequence template: specials before and after the sequence ($A). */
    record Template(List<Special> before, List<Special> after) implements PostProcessor {
        @Override
        public void process(BpeModel.IntList ids, List<String> tokens) {
            int[] sequence = ids.toArray();
            ids.clear();
            for (Special s : before) ids.add(s.id());
            ids.addAll(sequence);
            for (Special s : after) ids.add(s.id());
            if (tokens != null) {
                var sequenceTokens = new ArrayList<>(tokens);
                tokens.clear();
                for (Special s : before) tokens.add(s.token());
                tokens.addAll(sequenceTokens);
                for (Special s : after) tokens.add(s.token());
            }
        }
    }
}
