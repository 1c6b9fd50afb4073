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

    /** The ids and token strings with the specials inserted. */
    void process(List<Integer> ids, List<String> tokens);

    /** Applies processors in order. */
    record Sequence(List<PostProcessor> steps) implements PostProcessor {
        @Override
        public void process(List<Integer> ids, List<String> tokens) {
            for (PostProcessor p : steps) p.process(ids, tokens);
        }
    }

    /** The ByteLevel processor only trims offsets, which moe4j does not report: ids pass through. */
    record ByteLevelOffsets() implements PostProcessor {
        @Override
        public void process(List<Integer> ids, List<String> tokens) {
        }
    }

    /** TemplateProcessing's single-sequence template: specials before and after the sequence ($A). */
    record Template(List<Special> before, List<Special> after) implements PostProcessor {
        @Override
        public void process(List<Integer> ids, List<String> tokens) {
            var newIds = new ArrayList<Integer>(ids.size() + before.size() + after.size());
            var newTokens = new ArrayList<String>(newIds.size());
            for (Special s : before) {
                newIds.add(s.id());
                newTokens.add(s.token());
            }
            newIds.addAll(ids);
            newTokens.addAll(tokens);
            for (Special s : after) {
                newIds.add(s.id());
                newTokens.add(s.token());
            }
            ids.clear();
            ids.addAll(newIds);
            tokens.clear();
            tokens.addAll(newTokens);
        }
    }
}
