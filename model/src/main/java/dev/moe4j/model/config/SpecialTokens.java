package dev.moe4j.model.config;

import java.util.List;
import java.util.OptionalInt;

/** The token ids the config declares for beginning and end of sequence and padding (each may be absent). */
public record SpecialTokens(OptionalInt bos, List<Integer> eos, OptionalInt pad) {
    public SpecialTokens {
        eos = List.copyOf(eos);
    }

    public static SpecialTokens none() {
        return new SpecialTokens(OptionalInt.empty(), List.of(), OptionalInt.empty());
    }
}
