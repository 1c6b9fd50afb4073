package dev.moe4j.model.generate.structured;

import java.util.Set;

/**
 * What a generation's output must be (a {@link Shape}) over which vocabulary: the description a request carries;
 * each sequence {@link #start}s its own {@link OutputConstraint}.
 *
 * @param description what the shape came from, for messages (e.g. "json_schema 'weather'")
 */
public record StructuredOutput(Shape shape, TokenVocabulary vocabulary, String description) {
    public OutputConstraint start(Set<Integer> endIds) {
        return new OutputConstraint(ByteMatcher.start(shape), vocabulary, endIds);
    }
}
